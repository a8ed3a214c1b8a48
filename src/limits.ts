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

/**
 * Knock confirmation (README.md, "Confirmation"): for a few seconds after an accepted knock the kernel answers one TCP
 * SYN from the knock's source address to the port the knock named with a reset; every other packet to the range is dropped.
 */
export const CONFIRM = {
  /** Default confirmPorts, server config and client profile alike: 16 TCP ports after the knock port. */
  defaultFirstPort: 62202,
  defaultLastPort: 62217,
  /** How long a confirmation waits in the kernel for the client's SYN. */
  timeoutSeconds: 5,
  /** Pending confirmations the kernel holds (the confirm4/confirm6 set size); when full, a knock is still served, unconfirmed. */
  setSize: 65_535,
  /** Most ports a confirmation range may span. */
  maxRangePorts: 1024,
  /** Client: once the protected port is reachable (a grant is open), how long it still waits for this knock's confirmation. */
  afterReachableMs: 2500,
  /**
   * Client: the control port is probed with the first attempt, so on a host that resets every SYN its reset arrives
   * no later than the confirming one, but for jitter: after the confirming reset it gets a quarter of that reset's
   * round trip more, at least this. It delays a real confirmation by as much.
   */
  controlGraceMinMs: 10,
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
  /** Version 1 knocks the kernel lets through to the daemon per second, from all sources together, so it can log old_version. */
  oldVersionPerSecond: 10,
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
  /** The kernel's slot tokens are replaced this long after each 30 s slot boundary (they hold one slot ahead, so no lag matters). */
  tokenRefreshAfterBoundaryMs: 50,
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
export const RATE_LIMIT = {
  evictScanEveryMs: 100,
  /**
   * Box opens per second for all sources together: each costs ~135 µs of X25519 plus an Ed25519 verify, so this holds
   * the public-key work a holder of server.pub can cause from forged sources to about a third of one core.
   */
  globalOpensPerSecond: 1_000,
  /** Once the global budget is half spent, only sources that got no box open for this long are served from the rest. */
  quietAfterMs: 1_000,
  /** Box opens per second reserved for sources that sent an accepted knock before, once the global budget is spent. */
  vouchedOpensPerSecond: 100,
  /** Sources remembered as having sent an accepted knock (least recent forgotten first). */
  maxVouchedSources: 65_536,
} as const;

/**
 * The drop log (server/log.ts). perInterval is log lines per budget per interval: each reason that involves a key, a user
 * or the server's own state (revoked, replay, stale, ...) has its own budget, and the junk reasons (mapped source, bad
 * length, version, mac1 or box; malformed frames) share one; the rest are counted and summarised by reason. At most
 * perInterval × (1 + those reasons) lines per interval: about 300 per 10 s if every reason floods, 20 for a junk flood.
 */
export const DROP_LOG = { perInterval: 20, intervalMs: 10_000 } as const;

/** The opt-in metrics endpoint (server/metrics-endpoint.ts) and what it measures (server/metrics.ts). */
export const METRICS = {
  /** Grant and revoke latency histograms: from a millisecond (a grant on an idle host takes ~4 ms) to 10 s. */
  latencyBucketsSeconds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  /** A kernel listing of the grants is reused for this long, so a burst of scrapes runs nft once. */
  grantsReadMinIntervalMs: 1_000,
  /** A kernel listing for a scrape that takes longer than this fails (the series is left out of that page). */
  grantsReadTimeoutMs: 5_000,
  /** Scrapers connected at once; more are refused by the listener. */
  maxConnections: 8,
  /** A request must arrive whole (headers included) within this; an idle kept-alive connection closes after it. */
  requestTimeoutMs: 5_000,
  maxHeaderBytes: 8_192,
  /** A unix socket's mode: the daemon's user and group may scrape. */
  unixSocketMode: 0o660,
  /** sun_path holds 108 bytes with its terminating NUL. */
  maxUnixPathBytes: 107,
} as const;

/** The client's ssh-agent and passphrase prompts. */
export const AGENT = {
  /** OpenSSH's own cap on an agent message (AGENT_MAX_LEN): a longer answer is refused unread. */
  maxMessageBytes: 256 * 1024,
  /** An agent may ask its user to confirm a signature (ssh-add -c): long enough for a person, not forever. */
  timeoutMs: 60_000,
} as const;

export const PASSPHRASE = {
  /** readpassphrase's buffer in ssh is 1024 bytes; longer input is refused rather than cut. */
  maxBytes: 1024,
  /** bcrypt-pbkdf rounds for keys sesame keygen encrypts: ssh-keygen's default. */
  kdfRounds: 16,
} as const;

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
