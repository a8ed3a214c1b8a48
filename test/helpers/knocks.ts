// Knocks made to reach a given step of the packet path past the slot token (protocol v2): stale ones whose slot is still accepted, and a knock re-tokened for another server. Test input only.
import { concat } from '../../src/protocol/bytes.ts';
import type { ServerPublicKey } from '../../src/protocol/bytes.ts';
import { tokenBytes } from '../../src/protocol/build.ts';
import { slotOf } from '../../src/protocol/keys.ts';
import { WIRE } from '../../src/protocol/layout.ts';

/**
 * A timestamp outside now ± windowMs whose slot's token the server still accepts: the slots overlapping the window
 * reach past it by r ms below and 30 s - r above, so the wider side has room; the middle of it is picked, away from
 * both ends, so a clock a few seconds off between test and daemon still lands there.
 */
export function staleWithToken(nowMs: number, windowMs = 30_000): number {
  const below = nowMs - windowMs - slotOf(nowMs - windowMs) * WIRE.tokenSlotMs;
  const above = (slotOf(nowMs + windowMs) + 1) * WIRE.tokenSlotMs - (nowMs + windowMs);
  return below > above ? nowMs - windowMs - Math.floor(below / 2) : nowMs + windowMs + Math.floor(above / 2);
}

/** The packet with `server`'s token for `timestampMs` in place of its own: what a holder of both public keys could send. */
export function retoken(packet: Uint8Array, server: ServerPublicKey, timestampMs: number): Uint8Array {
  return concat(packet.subarray(0, WIRE.tokenAt), tokenBytes(server, timestampMs), packet.subarray(WIRE.tokenAt + WIRE.tokenBytes));
}
