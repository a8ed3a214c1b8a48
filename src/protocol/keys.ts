// Key material and the hashes derived from it (mac1 key, key id). Inputs are branded, length-checked bytes.
import { createHash } from 'node:crypto';
import { concat, keyId, mac1Key, serverPublicKey, serverSecretKey, userPublicKey, userSecretKey, utf8 } from './bytes.ts';
import type { KeyId, Mac1Key, ServerPublicKey, ServerSecretKey, UserPublicKey, UserSecretKey } from './bytes.ts';
import { KEY_BYTES, LABEL, WIRE } from './layout.ts';
import { sodium } from './sodium.ts';

export interface ServerKeys {
  readonly publicKey: ServerPublicKey;
  readonly secretKey: ServerSecretKey;
  readonly mac1Key: Mac1Key;
}

export interface UserKeys {
  readonly publicKey: UserPublicKey;
  readonly secretKey: UserSecretKey;
}

/** mac1 key = BLAKE2b-256("sesame/v2/mac1-key" || server public key), unkeyed. */
export function deriveMac1Key(server: ServerPublicKey): Mac1Key {
  return mac1Key(sodium().crypto_generichash(KEY_BYTES.mac1Key, concat(utf8(LABEL.mac1Key), server), null));
}

/** key id = BLAKE2b-128("sesame/v1/key-id" || Ed25519 public key), unkeyed. */
export function deriveKeyId(user: UserPublicKey): KeyId {
  return keyId(sodium().crypto_generichash(KEY_BYTES.keyId, concat(utf8(LABEL.keyId), user), null));
}

/** The slot a knock timestamp falls in: floor(t / 30 000 ms). */
export const slotOf = (timestampMs: number): number => Math.floor(timestampMs / WIRE.tokenSlotMs);

/**
 * The slot token: the first 4 bytes of BLAKE2b-128(key = mac1 key, "sesame/v2/token" || slot as u64 big-endian), read as
 * a big-endian u32 (the kernel compares it as such). Only holders of the server public key can compute it.
 */
export function deriveToken(mac1: Mac1Key, slot: number): number {
  const message = new Uint8Array(LABEL.token.length + 8);
  message.set(utf8(LABEL.token));
  new DataView(message.buffer).setBigUint64(LABEL.token.length, BigInt(slot));
  const digest = sodium().crypto_generichash(KEY_BYTES.tokenDigest, message, mac1);
  return new DataView(digest.buffer, digest.byteOffset, WIRE.tokenBytes).getUint32(0);
}

export function serverKeysFromSecret(secret: ServerSecretKey): ServerKeys {
  const publicKey = serverPublicKey(sodium().crypto_scalarmult_base(secret));
  return { publicKey, secretKey: secret, mac1Key: deriveMac1Key(publicKey) };
}

export function generateServerKeys(): ServerKeys {
  return serverKeysFromSecret(serverSecretKey(sodium().randombytes_buf(KEY_BYTES.serverSecret)));
}

/** Deterministic user keys from a 32-byte seed (test vectors, or a secret key file's seed). */
export function userKeysFromSeed(seed: Uint8Array): UserKeys {
  const kp = sodium().crypto_sign_seed_keypair(seed);
  return { publicKey: userPublicKey(kp.publicKey), secretKey: userSecretKey(kp.privateKey) };
}

export function generateUserKeys(): UserKeys {
  return userKeysFromSeed(sodium().randombytes_buf(KEY_BYTES.userSeed));
}

/**
 * A public key's fingerprint as ssh-keygen -l prints one: "SHA256:" and the unpadded base64 of SHA-256 over the 32 key
 * bytes. For people to compare, not a protocol value; SHA-256 comes from node:crypto because libsodium.js's standard
 * build has no SHA-256.
 */
export function fingerprint(publicKey: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '')}`;
}
