// The one module that builds knock packets (client side). Inputs are typed values from the caller; randomness is injected so test vectors are reproducible.
import { randomFillSync } from 'node:crypto';
import type { Access } from './access.ts';
import type { Address } from './address.ts';
import { concat, utf8 } from './bytes.ts';
import type { ServerPublicKey } from './bytes.ts';
import { deriveKeyId, deriveMac1Key, deriveToken, slotOf } from './keys.ts';
import type { UserKeys } from './keys.ts';
import { KEY_BYTES, LABEL, MAX_PACKET_BYTES, WIRE } from './layout.ts';
import { canonicalAccess, writePayload } from './payload.ts';
import { sodium } from './sodium.ts';

export interface KnockRequest {
  readonly access: readonly Access[];
  readonly durationSeconds?: number;
  readonly openAddress?: Address;
  /** Wire key "c": the confirmation TCP port the client will probe after the knock. */
  readonly confirmPort?: number;
}

/** Returns n random bytes. Production passes libsodium's CSPRNG; vectors pass a seeded stream. */
export type RandomBytes = (n: number) => Uint8Array;

/** The canonical payload (payload.ts): access entries sorted and deduplicated, so the same request is always the same bytes. */
export function encodePayload(request: KnockRequest, timestampMs: number, nonce: Uint8Array): Uint8Array {
  return writePayload({ ...request, timestampMs, nonce, access: canonicalAccess(request.access) });
}

/** The exact bytes the user signs: label || 0x00 || server public key || payload. */
export function signedMessage(server: ServerPublicKey, payloadBytes: Uint8Array): Uint8Array {
  return concat(utf8(LABEL.signature), Uint8Array.of(0), server, payloadBytes);
}

/** crypto_box_seal, spelled out so the ephemeral key can come from injected randomness. Opens with crypto_box_seal_open. */
function seal(plain: Uint8Array, server: ServerPublicKey, random: RandomBytes): Uint8Array {
  const na = sodium();
  const eph = na.crypto_box_seed_keypair(random(WIRE.ephemeralKeyBytes));
  const nonce = na.crypto_generichash(KEY_BYTES.sealNonce, concat(eph.publicKey, server), null);
  const boxed = na.crypto_box_easy(plain, nonce, server, eph.privateKey);
  na.memzero(eph.privateKey);
  return concat(eph.publicKey, boxed);
}

/** The token as it goes on the wire: 4 bytes, big-endian. */
export function tokenBytes(server: ServerPublicKey, timestampMs: number): Uint8Array {
  const out = new Uint8Array(WIRE.tokenBytes);
  new DataView(out.buffer).setUint32(0, deriveToken(deriveMac1Key(server), slotOf(timestampMs)));
  return out;
}

/** Seals an inner plaintext (key id | signature | payload) and frames it: header | token of t's slot | sealed box | mac1. */
export function framePacket(inner: Uint8Array, server: ServerPublicKey, timestampMs: number, random: RandomBytes): Uint8Array {
  const macInput = concat(WIRE.header, tokenBytes(server, timestampMs), seal(inner, server, random));
  return concat(macInput, sodium().crypto_generichash(WIRE.mac1Bytes, macInput, deriveMac1Key(server)));
}

export function buildKnock(request: KnockRequest, user: UserKeys, server: ServerPublicKey, nowMs: number, random: RandomBytes): Uint8Array {
  const payloadBytes = encodePayload(request, nowMs, random(WIRE.nonceBytes));
  const signature = sodium().crypto_sign_detached(signedMessage(server, payloadBytes), user.secretKey);
  const packet = framePacket(concat(deriveKeyId(user.publicKey), signature, payloadBytes), server, nowMs, random);
  if (packet.length > MAX_PACKET_BYTES) throw new RangeError(`knock is ${packet.length} bytes, over the ${MAX_PACKET_BYTES}-byte limit: ask for fewer ports`);
  return packet;
}

/**
 * The OS CSPRNG. libsodium.js's randombytes_buf draws from this same source (node:crypto) four bytes per
 * JS callback, which costs ~100 µs per call here; filling the buffer directly is the same randomness, ~100x cheaper.
 */
export const systemRandom: RandomBytes = (n) => randomFillSync(new Uint8Array(n));
