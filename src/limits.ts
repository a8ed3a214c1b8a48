// Every size, window, rate and cap sesame uses, with its unit in the name. Trusts nothing; holds no logic.

/** Wire layout of protocol version 1 (see README.md, "Protocol"). */
export const WIRE = {
  /** "ses" followed by the version byte. */
  header: Uint8Array.of(0x73, 0x65, 0x73, 0x01),
  headerBytes: 4,
  mac1Bytes: 16,
  /** crypto_box_seal overhead: ephemeral public key (32) + Poly1305 tag (16). */
  sealOverheadBytes: 48,
  keyIdBytes: 16,
  signatureBytes: 64,
  minPayloadBytes: 24,
  maxPayloadBytes: 320,
  nonceBytes: 16,
  maxAccessEntries: 16,
} as const;

export const INNER_FIXED_BYTES = WIRE.keyIdBytes + WIRE.signatureBytes;
export const OUTER_FIXED_BYTES = WIRE.headerBytes + WIRE.mac1Bytes + WIRE.sealOverheadBytes + INNER_FIXED_BYTES;
export const MIN_PACKET_BYTES = OUTER_FIXED_BYTES + WIRE.minPayloadBytes;
export const MAX_PACKET_BYTES = OUTER_FIXED_BYTES + WIRE.maxPayloadBytes;

/** Domain-separation strings: every hash and signature says what it is for. */
export const LABEL = {
  mac1Key: 'sesame/v1/mac1-key',
  keyId: 'sesame/v1/key-id',
  signature: 'sesame/v1/knock',
} as const;

export const DEFAULTS = {
  knockPort: 62201,
  freshnessWindowMs: 30_000,
  defaultDurationSeconds: 30,
  maxDurationSeconds: 300,
} as const;

/** Hard ceilings that no config can raise. */
export const CEILING = {
  durationSeconds: 86_400,
  freshnessWindowMs: 300_000,
} as const;
