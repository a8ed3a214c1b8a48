// Every bound sesame uses outside the wire layout (protocol/layout.ts): windows, rates, caps, timeouts, with the unit in the name. Holds no logic.

export const DEFAULTS = {
  knockPort: 62201,
  freshnessWindowMs: 30_000,
  defaultDurationSeconds: 30,
  maxDurationSeconds: 300,
  stateDir: '/var/lib/sesame',
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
  /** Upper bound of --timeout. */
  maxTimeoutSeconds: 600,
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
  /** nft's diagnostic lines kept per transaction (an error echoes the command; more is noise). */
  maxDiagnosticLines: 100,
} as const;

/** sesame's nftables table. */
export const TABLE = {
  defaultName: 'sesame',
  /** Per-source knock-port meters: bounded in size, and an idle source's entry expires. */
  meterSize: 65_535,
  meterTimeoutSeconds: 10,
  /** Rate and burst a config may set for the kernel meter. */
  maxMeterRate: 1_000_000,
  /** Upper bound of the grant maps' size (limits.maxGrants). */
  maxGrantsCeiling: 1_000_000,
  /** Connections admitted through grants, remembered (conntrack id, source, mark) so `sesame grant close` can cut them. */
  admittedSize: 65_535,
  /** How long an admitted connection is remembered, and a cut one kept cut: conntrack's established TCP timeout (5 days). */
  admittedTimeoutSeconds: 432_000,
  /** How long a connection that predates the table stays admitted by its exact addresses and ports (after that, only conntrack admits it). */
  preexistingTimeoutSeconds: 86_400,
} as const;

/** Captured frames (pcap mode). */
export const FRAME = {
  /** 802.1ad QinQ is two tags; deeper stacks are not a real network's. */
  maxVlanTags: 2,
  maxIpv6ExtensionHeaders: 8,
} as const;

/** The daemon's own timers. */
export const DAEMON = {
  /** Events of one users-file rename arrive together; a rename is atomic, so waiting this long reads no half-written file. */
  usersReloadDebounceMs: 10,
  /** Pruning expired table entries and flushing the drop log's summary. */
  housekeepingMs: 10_000,
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

/** The replay record: expired records are pruned at most this often (and at least every quarter window). */
export const REPLAY = { minPruneEveryMs: 1_000 } as const;

/** `sesame user` edits: a second editor waits this long for the users file's lock, then gives up (generous: 40 editors started at once on 2 cores take ~16 s to get through). */
export const LOCK = { waitSeconds: 20 } as const;

/** The rate limiter: a full scan to evict idle sources at most this often, so a spoofed-source flood cannot turn each packet into an O(table) walk. */
export const RATE_LIMIT = { evictScanEveryMs: 100 } as const;

/**
 * The drop log (server/log.ts). perInterval is log lines per budget per interval: each reason that involves a key, a user
 * or the server's own state (revoked, replay, stale, ...) has its own budget, and the junk reasons (mapped source, bad
 * length, version, mac1 or box; malformed frames) share one; the rest are counted and summarised by reason. At most
 * perInterval × (1 + those reasons) lines per interval: about 300 per 10 s if every reason floods, 20 for a junk flood.
 */
export const DROP_LOG = { perInterval: 20, intervalMs: 10_000 } as const;

/** The etcd users source (server/users-etcd.ts) and `sesame user` against etcd (cli/user-etcd.ts). */
export const ETCD = {
  /** Each daemon reads the document this often besides its watch: it finds an outage, and the end of one, within about this. */
  probeEveryMs: 1_000,
  /** Deadline of one unary call (read, transaction); a stream (the watch) has none. */
  callTimeoutMs: 2_000,
  /** A host that failed this many calls in a row is skipped for retryHostAfterMs. */
  hostFailuresBeforeSkip: 3,
  retryHostAfterMs: 1_000,
  /** Watch stream reconnects: first delay and cap. */
  watchBackoffMs: 100,
  watchBackoffMaxMs: 1_000,
  /** Compare-and-swap attempts of one `sesame user` edit before it gives up (another admin keeps winning). */
  maxEditAttempts: 20,
  /** Size cap of the signed document (etcd's own default request cap is 1.5 MiB). */
  maxDocumentBytes: 1_000_000,
} as const;
