// Step 4 of the packet path: open the sealed box with the server's key. Input: a mac1-checked outer packet (step 1), from a source under its rate (step 3).
import type { ServerKeys } from '../protocol/keys.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { sodium } from '../protocol/sodium.ts';
import { splitInner } from '../protocol/parse.ts';
import type { InnerPacket, OuterPacket } from '../protocol/parse.ts';

export function openBox(outer: OuterPacket, server: ServerKeys): Result<InnerPacket> {
  let plain: Uint8Array;
  try {
    plain = sodium().crypto_box_seal_open(outer.box, server.publicKey, server.secretKey);
  } catch {
    return drop(DROP.badBox);
  }
  return ok(splitInner(plain));
}
