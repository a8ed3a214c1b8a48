// Step 1 of the packet path: length, version and mac1, the cheap checks that run before any public-key operation. Input: raw untrusted bytes.
import type { Mac1Key } from './bytes.ts';
import { WIRE } from './limits.ts';
import { DROP, drop } from './reasons.ts';
import type { Result } from './reasons.ts';
import { sodium } from './sodium.ts';
import { parseOuter } from './wire.ts';
import type { OuterPacket } from './wire.ts';

export function prefilter(packet: Uint8Array, mac1Key: Mac1Key): Result<OuterPacket> {
  const outer = parseOuter(packet);
  if (!outer.ok) return outer;
  const na = sodium();
  const expected = na.crypto_generichash(WIRE.mac1Bytes, outer.value.macInput, mac1Key);
  if (!na.memcmp(expected, outer.value.mac1)) return drop(DROP.badMac);
  return outer;
}

