// Step 4 of the packet path: find the key by key id (O(1), no trial decryption), check the Ed25519 signature, then decode the payload. Input: an opened inner packet.
import type { KeyId, ServerPublicKey, UserPublicKey } from './bytes.ts';
import { signedMessage } from './knock.ts';
import { DROP, drop, ok } from './reasons.ts';
import type { Result } from './reasons.ts';
import { sodium } from './sodium.ts';
import { decodePayload } from './wire.ts';
import type { InnerPacket, Payload } from './wire.ts';

export interface AuthorizedKey {
  readonly keyId: KeyId;
  readonly publicKey: UserPublicKey;
  readonly user: string;
  readonly revoked: boolean;
}

export type KeyLookup = (id: KeyId) => AuthorizedKey | undefined;

export interface VerifiedKnock {
  readonly key: AuthorizedKey;
  readonly payload: Payload;
  /** The exact signed payload bytes, for the replay record. */
  readonly payloadBytes: Uint8Array;
}

export function verify(inner: InnerPacket, lookup: KeyLookup, server: ServerPublicKey): Result<VerifiedKnock> {
  const key = lookup(inner.keyId);
  if (key === undefined) return drop(DROP.unknownKey);
  if (!sodium().crypto_sign_verify_detached(inner.signature, signedMessage(server, inner.payloadBytes), key.publicKey)) {
    return drop(DROP.badSignature, { user: key.user });
  }
  // Checked after the signature so that "revoked" in a log means the revoked key really signed.
  if (key.revoked) return drop(DROP.revoked, { user: key.user });
  const payload = decodePayload(inner.payloadBytes);
  if (!payload.ok) return payload.detail === undefined ? drop(payload.reason, { user: key.user }) : drop(payload.reason, { ...payload.detail, user: key.user });
  return ok({ key, payload: payload.value, payloadBytes: inner.payloadBytes });
}
