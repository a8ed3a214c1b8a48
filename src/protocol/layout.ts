// The wire format of protocol version 1, byte for byte (README.md, "Protocol"): every offset, length and label. Holds no logic and trusts nothing.

/** Sizes of the fields, in bytes. */
export const WIRE = {
  /** "ses" followed by the version byte. */
  header: Uint8Array.of(0x73, 0x65, 0x73, 0x01),
  headerBytes: 4,
  mac1Bytes: 16,
  /** crypto_box_seal overhead: ephemeral public key (32) + Poly1305 tag (16). */
  sealOverheadBytes: 48,
  ephemeralKeyBytes: 32,
  keyIdBytes: 16,
  signatureBytes: 64,
  minPayloadBytes: 24,
  maxPayloadBytes: 320,
  nonceBytes: 16,
  maxAccessEntries: 16,
  /** Payload "o": an IPv4 or IPv6 address, network order. */
  openAddressBytes: [4, 16],
} as const;

const INNER_FIXED_BYTES = WIRE.keyIdBytes + WIRE.signatureBytes;
export const OUTER_FIXED_BYTES = WIRE.headerBytes + WIRE.mac1Bytes + WIRE.sealOverheadBytes + INNER_FIXED_BYTES;
export const MIN_PACKET_BYTES = OUTER_FIXED_BYTES + WIRE.minPayloadBytes;
export const MAX_PACKET_BYTES = OUTER_FIXED_BYTES + WIRE.maxPayloadBytes;

/** Offsets in the inner plaintext: key id | signature | payload. */
export const INNER = {
  keyIdAt: 0,
  signatureAt: WIRE.keyIdBytes,
  payloadAt: WIRE.keyIdBytes + WIRE.signatureBytes,
} as const;

/** Domain-separation strings: every hash and signature says what it is for. */
export const LABEL = {
  mac1Key: 'sesame/v1/mac1-key',
  keyId: 'sesame/v1/key-id',
  signature: 'sesame/v1/knock',
  replay: 'sesame/v1/replay',
  /** Admin signature over a users document (server/users-signed.ts). */
  usersDocument: 'sesame/v1/users-document',
} as const;

/** Lengths of the derived values and keys. */
export const KEY_BYTES = {
  serverPublic: 32,
  serverSecret: 32,
  userPublic: 32,
  /** libsodium's Ed25519 secret key: 32-byte seed followed by the public key. */
  userSecret: 64,
  userSeed: 32,
  keyId: WIRE.keyIdBytes,
  /** BLAKE2b-256(LABEL.mac1Key || server public key). */
  mac1Key: 32,
  /** crypto_box nonce derived from the ephemeral and server public keys. */
  sealNonce: 24,
  /** BLAKE2b-128(LABEL.replay || key id || payload). */
  replayDigest: 16,
} as const;
