// The stateless part of the packet path as one function: prefilter, open, verify, freshness. No I/O: the clock and the key lookup come in.
import type { ServerKeys } from './keys.ts';
import { openBox } from './open.ts';
import { prefilter } from './prefilter.ts';
import type { Result } from './reasons.ts';
import { checkFreshness } from './replay.ts';
import { verify } from './verify.ts';
import type { KeyLookup, VerifiedKnock } from './verify.ts';
import type { OuterPacket } from './wire.ts';

export interface CheckContext {
  readonly server: ServerKeys;
  readonly lookup: KeyLookup;
  readonly nowMs: number;
  readonly windowMs: number;
}

/** Everything after the rate limit that needs no state: the public-key work. */
export function authenticate(outer: OuterPacket, ctx: CheckContext): Result<VerifiedKnock> {
  const inner = openBox(outer, ctx.server);
  if (!inner.ok) return inner;
  const knock = verify(inner.value, ctx.lookup, ctx.server.publicKey);
  if (!knock.ok) return knock;
  const fresh = checkFreshness(knock.value.payload.timestampMs, ctx.nowMs, ctx.windowMs);
  if (!fresh.ok) return { ...fresh, detail: { ...fresh.detail, user: knock.value.key.user } };
  return knock;
}

/** Verdict for one packet, as the test vectors record it. */
export function checkKnock(packet: Uint8Array, ctx: CheckContext): Result<VerifiedKnock> {
  const outer = prefilter(packet, ctx.server.mac1Key);
  if (!outer.ok) return outer;
  return authenticate(outer.value, ctx);
}
