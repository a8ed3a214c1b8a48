// Step 1 of the packet path: length, version, slot token and mac1, the cheap checks that run before any public-key operation. The token is checked against the few valid now (tokens.ts); mac1 is tried against each server key in force (one keyed hash each; at most 4 during a key rotation), and names the key the packet was sealed to. Input: raw untrusted bytes.
import type { ServerKeys } from '../protocol/keys.ts';
import { WIRE } from '../protocol/layout.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { sodium } from '../protocol/sodium.ts';
import { parseOuter } from '../protocol/parse.ts';
import type { OuterPacket } from '../protocol/parse.ts';
import { TokenCheck } from './tokens.ts';

export interface Prefiltered {
  readonly outer: OuterPacket;
  /** The server key whose mac1 the packet carries: the one its box is sealed to. */
  readonly server: ServerKeys;
}

/** The clock the token is checked against: the server's time and its freshness window. */
export interface TokenClock {
  readonly nowMs: number;
  readonly windowMs: number;
}

const tokens = new TokenCheck();

export function prefilter(packet: Uint8Array, servers: readonly ServerKeys[], clock: TokenClock): Result<Prefiltered> {
  const outer = parseOuter(packet);
  if (!outer.ok) return outer;
  if (!tokens.accepts(outer.value.token, servers, clock.nowMs, clock.windowMs)) return drop(DROP.badToken);
  const na = sodium();
  for (const server of servers) {
    const expected = na.crypto_generichash(WIRE.mac1Bytes, outer.value.macInput, server.mac1Key);
    if (na.memcmp(expected, outer.value.mac1)) return ok({ outer: outer.value, server });
  }
  return drop(DROP.badMac);
}
