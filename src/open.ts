// Step 3 of the packet path: open the sealed box with the server's key. Input: a mac1-checked outer packet.
import type { ServerKeys } from './keys.ts';
import { DROP, drop, ok } from './reasons.ts';
import type { Result } from './reasons.ts';
import { sodium } from './sodium.ts';
import { splitInner } from './wire.ts';
import type { InnerPacket, OuterPacket } from './wire.ts';

export function openBox(outer: OuterPacket, server: ServerKeys): Result<InnerPacket> {
  let plain: Uint8Array;
  try {
    plain = sodium().crypto_box_seal_open(outer.box, server.publicKey, server.secretKey);
  } catch {
    return drop(DROP.badBox);
  }
  return ok(splitInner(plain));
}
