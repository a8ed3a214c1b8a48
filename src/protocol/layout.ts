// The wire format of protocol version 2, byte for byte (README.md, "Protocol"): every offset, length and label. Holds no logic and trusts nothing.

/** Sizes of the fields, in bytes. */
export const WIRE = {
  /** "ses" followed by the version byte. */
  header: Uint8Array.of(0x73, 0x65, 0x73, 0x02),
  /** Version 1's header: refused as old_version, so an old client is told apart from junk in the log. */
  oldHeader: Uint8Array.of(0x73, 0x65, 0x73, 0x01),
  headerBytes: 4,
  /** The slot token right after the header, where a kernel rule can read it (UDP payload bytes 4..7). */
  tokenAt: 4,
  tokenBytes: 4,
  /** One token per slot of this many ms: floor(t / slotMs). */
  tokenSlotMs: 30_000,
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
export const OUTER_FIXED_BYTES = WIRE.headerBytes + WIRE.tokenBytes + WIRE.mac1Bytes + WIRE.sealOverheadBytes + INNER_FIXED_BYTES;
export const MIN_PACKET_BYTES = OUTER_FIXED_BYTES + WIRE.minPayloadBytes;
export const MAX_PACKET_BYTES = OUTER_FIXED_BYTES + WIRE.maxPayloadBytes;
/** Version 1 packets had no token: their length bounds, for telling an old client from junk. */
export const V1_PACKET_BYTES = { min: MIN_PACKET_BYTES - WIRE.tokenBytes, max: MAX_PACKET_BYTES - WIRE.tokenBytes } as const;

/** Offsets in the inner plaintext: key id | signature | payload. */
export const INNER = {
  keyIdAt: 0,
  signatureAt: WIRE.keyIdBytes,
  payloadAt: WIRE.keyIdBytes + WIRE.signatureBytes,
} as const;

/**
 * Domain-separation strings: every hash and signature says what it is for. All are version 2's except the key id's,
 * which stays "sesame/v1/key-id": a key id names a user key, and the kernel's grant owners and connection marks derive
 * from it, so changing it would orphan every live grant at the upgrade.
 */
export const LABEL = {
  mac1Key: 'sesame/v2/mac1-key',
  token: 'sesame/v2/token',
  keyId: 'sesame/v1/key-id',
  signature: 'sesame/v2/knock',
  replay: 'sesame/v2/replay',
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
  /** The first 4 bytes of BLAKE2b-128(key = mac1 key, LABEL.token || u64be(slot)); libsodium's shortest digest is 16 bytes. */
  tokenDigest: 16,
  /** BLAKE2b-128(LABEL.replay || key id || payload). */
  replayDigest: 16,
} as const;
