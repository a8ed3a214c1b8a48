// Step 1 of the packet path: length, version and mac1, the cheap checks that run before any public-key operation. Input: raw untrusted bytes.
import type { Mac1Key } from '../protocol/bytes.ts';
import { WIRE } from '../protocol/layout.ts';
import { DROP, drop } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { sodium } from '../protocol/sodium.ts';
import { parseOuter } from '../protocol/parse.ts';
import type { OuterPacket } from '../protocol/parse.ts';

export function prefilter(packet: Uint8Array, mac1Key: Mac1Key): Result<OuterPacket> {
  const outer = parseOuter(packet);
  if (!outer.ok) return outer;
  const na = sodium();
  const expected = na.crypto_generichash(WIRE.mac1Bytes, outer.value.macInput, mac1Key);
  if (!na.memcmp(expected, outer.value.mac1)) return drop(DROP.badMac);
  return outer;
}

