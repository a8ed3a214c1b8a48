// Step 7 of the packet path: the knock's timestamp must lie within the freshness window of the server clock. Input: a decoded payload's timestamp; the clock comes in.
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';

export function checkFreshness(timestampMs: number, nowMs: number, windowMs: number): Result<true> {
  const skewMs = timestampMs - nowMs;
  if (Math.abs(skewMs) > windowMs) return drop(DROP.stale, { skewMs, windowMs });
  return ok(true);
}
