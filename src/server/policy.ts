// Step 9 of the packet path: what a verified, fresh, first-seen knock may open, from the user's policy and the server's bounds. Inputs are typed values.
import { formatAccess, sameAccess } from '../protocol/access.ts';
import { cidrContains } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import type { Opening } from './firewall.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import type { UserPolicy } from './users.ts';
import type { Payload } from '../protocol/parse.ts';

export interface ServerBounds {
  readonly defaultDurationSeconds: number;
  readonly maxDurationSeconds: number;
}

export function decide(payload: Payload, source: Address, user: UserPolicy, bounds: ServerBounds): Result<Opening[]> {
  if (user.from.length > 0 && !user.from.some((c) => cidrContains(c, source))) return drop(DROP.sourceNotAllowed, { user: user.name, source: source.text });
  const target = payload.openAddress ?? source;
  if (target.text !== source.text && !user.mayOpenOtherAddress) return drop(DROP.addressNotAllowed, { user: user.name, source: source.text, open: target.text });
  // `from` bounds the address opened as well as the one knocking: a NAT user names an address in their own networks.
  if (target !== source && user.from.length > 0 && !user.from.some((c) => cidrContains(c, target))) return drop(DROP.addressNotAllowed, { user: user.name, source: source.text, open: target.text });
  for (const a of payload.access) {
    if (!user.ports.some((p) => sameAccess(p, a))) return drop(DROP.portNotAllowed, { user: user.name, port: formatAccess(a) });
  }
  // A requested duration is a wish, capped by the user's and then the server's maximum; never refused for being long.
  const cap = Math.min(user.maxDurationSeconds ?? bounds.maxDurationSeconds, bounds.maxDurationSeconds);
  const ttlSeconds = Math.min(payload.durationSeconds ?? bounds.defaultDurationSeconds, cap);
  return ok(payload.access.map((access) => ({ address: target, access, ttlSeconds })));
}
