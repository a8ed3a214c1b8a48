// The stateless verdict on one packet, as the test vectors record it: steps 1, 4, 5, 6 and 7 of the packet path (src/server/pipeline.ts), in that order, without the daemon's state (seen packets, rate limits, replay record, policy).
import type { ServerKeys } from '../../src/protocol/keys.ts';
import { decodePayload } from '../../src/protocol/parse.ts';
import type { Payload } from '../../src/protocol/parse.ts';
import { drop, ok } from '../../src/protocol/reasons.ts';
import type { Result } from '../../src/protocol/reasons.ts';
import { checkFreshness } from '../../src/server/freshness.ts';
import { openBox } from '../../src/server/open.ts';
import { prefilter } from '../../src/server/prefilter.ts';
import { verify } from '../../src/server/verify.ts';
import type { AuthorizedKey, KeyLookup } from '../../src/server/verify.ts';

export interface CheckContext {
  readonly server: ServerKeys;
  readonly lookup: KeyLookup;
  readonly nowMs: number;
  readonly windowMs: number;
}

export interface VerifiedKnock {
  readonly key: AuthorizedKey;
  readonly payload: Payload;
  /** The exact signed payload bytes. */
  readonly payloadBytes: Uint8Array;
}

export function checkKnock(packet: Uint8Array, ctx: CheckContext): Result<VerifiedKnock> {
  const pre = prefilter(packet, [ctx.server], ctx);
  if (!pre.ok) return pre;
  const inner = openBox(pre.value.outer, ctx.server);
  if (!inner.ok) return inner;
  const key = verify(inner.value, ctx.lookup, ctx.server.publicKey);
  if (!key.ok) return key;
  const user = key.value.user;
  const payload = decodePayload(inner.value.payloadBytes);
  if (!payload.ok) return drop(payload.reason, { ...payload.detail, user });
  const fresh = checkFreshness(payload.value.timestampMs, ctx.nowMs, ctx.windowMs);
  if (!fresh.ok) return drop(fresh.reason, { ...fresh.detail, user });
  return ok({ key: key.value, payload: payload.value, payloadBytes: inner.value.payloadBytes });
}
