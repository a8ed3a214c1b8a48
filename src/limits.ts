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

/** Client: how --wait and ssh-proxy look for the opened port. */
export const WAIT = {
  /** Default for --timeout. */
  defaultTimeoutSeconds: 5,
  /**
   * Connect attempts this long after the knock, dense at first: on a near network the grant lands within a few
   * milliseconds, and an attempt whose SYN arrived before it is dropped and only ends at its timeout.
   */
  firstAttemptsMs: [0, 2, 4, 8, 16, 32, 64, 110],
  /** Then a new attempt this often. */
  pollMs: 150,
  /**
   * Per attempt. Just under Linux's 1 s initial SYN retransmission, so an attempt whose SYN the firewall
   * dropped ends instead of connecting late, as a duplicate, once the port opens.
   */
  attemptTimeoutMs: 900,
  /** UDP is unacknowledged: if nothing opened by then, the knock may be lost, so send a fresh one. */
  firstReknockMs: 1000,
  reknockEveryMs: 1500,
} as const;

/** Receive buffers. */
export const CAPTURE = {
  /** dgram socket: large enough to ride out a flood burst without the kernel dropping the legitimate knock in it. */
  udpReceiveBufferBytes: 4 * 1024 * 1024,
  /** Knocks are under 600 bytes: a longer frame is dropped unparsed (cap flags it truncated). */
  pcapFrameBufferBytes: 4096,
  /**
   * Kernel ring (pcap_set_buffer_size): absorbs a burst while the event loop is busy (a valid knock costs ~0.5 ms of CPU).
   * cap fixes the snaplen at 65535 and immediate mode makes libpcap use TPACKET_V2, whose slots are snaplen-sized: 16 MiB
   * holds about 250 frames, whatever their size. Bursts beyond that are lost here that a dgram socket would keep.
   */
  pcapRingBytes: 16 * 1024 * 1024,
} as const;

/** The nft helper process. */
export const NFT = {
  /** A command that is not acknowledged in this time kills nft and fails. */
  commandTimeoutMs: 5_000,
  /** nft's interactive mode keeps every line in memory (libedit history) and slows as it grows; a fresh process is cheap. */
  recycleAfterRequests: 1_000,
  spareLeadRequests: 100,
  /** Concurrent requests sent as one transaction; bounds the line length. */
  maxBatchRequests: 64,
} as const;

/** Defaults of the config's "limits" (schema/config.schema.json documents each). */
export const DEFAULT_LIMITS = {
  perSourcePerSecond: 5,
  perSourceBurst: 10,
  maxSources: 65_536,
  maxReplayEntries: 1_000_000,
  maxGrants: 100_000,
  kernelPerSourcePerSecond: 50,
  kernelPerSourceBurst: 100,
} as const;

/** Drop events logged per interval; the rest are counted and summarised. */
export const DROP_LOG = { perInterval: 20, intervalMs: 10_000 } as const;
