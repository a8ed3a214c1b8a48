// Step 5 of the packet path: find the key by key id (O(1), no trial decryption), check the Ed25519 signature, refuse revoked keys. Input: an opened inner packet.
import type { KeyId, ServerPublicKey, UserPublicKey } from '../protocol/bytes.ts';
import { signedMessage } from '../protocol/build.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { sodium } from '../protocol/sodium.ts';
import type { InnerPacket } from '../protocol/parse.ts';

export interface AuthorizedKey {
  readonly keyId: KeyId;
  readonly publicKey: UserPublicKey;
  readonly user: string;
  readonly revoked: boolean;
  /** Revoked, but the connections it admitted keep working. */
  readonly keepSessions?: boolean;
}

export type KeyLookup = (id: KeyId) => AuthorizedKey | undefined;

export function verify(inner: InnerPacket, lookup: KeyLookup, server: ServerPublicKey): Result<AuthorizedKey> {
  const key = lookup(inner.keyId);
  if (key === undefined) return drop(DROP.unknownKey);
  if (!sodium().crypto_sign_verify_detached(inner.signature, signedMessage(server, inner.payloadBytes), key.publicKey)) {
    return drop(DROP.badSignature, { user: key.user });
  }
  // Checked after the signature so that "revoked" in a log means the revoked key really signed.
  if (key.revoked) return drop(DROP.revoked, { user: key.user });
  return ok(key);
}
