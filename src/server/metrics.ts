// What sesame measures for Prometheus: knocks accepted and dropped by reason, grants open (read from the kernel), grant and revoke latencies, reloads, the users source. The packet path only adds to counters here; everything else is read when /metrics is asked for. Input: the daemon's own counts and the kernel's grant listing.
import { errorMessage } from '../errors.ts';
import { FRAME_DROP } from '../protocol/frame.ts';
import { DROP } from '../protocol/reasons.ts';
import { METRICS } from '../limits.ts';
import type { AnyDrop, Logger } from './log.ts';
import { openMetricsEndpoint } from './metrics-endpoint.ts';
import type { MetricsEndpoint, MetricsListen } from './metrics-endpoint.ts';
import { Histogram, render } from './prometheus.ts';
import type { Family, Sample } from './prometheus.ts';

/** Every drop reason, also those never seen yet: a series that exists from the start can be alerted on with rate(). */
const ALL_DROPS: readonly AnyDrop[] = [...Object.values(DROP), ...Object.values(FRAME_DROP)];

/** file: the users file; connected / disconnected: a networked source (etcd) and whether its watch is up. */
export const USERS_SOURCE_STATES = ['file', 'connected', 'disconnected'] as const;
export type UsersSourceState = (typeof USERS_SOURCE_STATES)[number];

/** What a users source says about itself; the file source's is kept by the daemon, a networked source reports its own. */
export interface UsersSourceStatus {
  readonly state: UsersSourceState;
  /** When the document in force was loaded (ms since the epoch); undefined if none was yet. */
  readonly lastSyncMs: number | undefined;
  /** The document's version: for the file, how many times it was loaded since start (1 = at start); for etcd, its revision. */
  readonly version: number | undefined;
}

/** The users source's series, from its status alone (so any source can report one). */
export function usersSourceFamilies(s: UsersSourceStatus): Family[] {
  const families: Family[] = [
    {
      name: 'sesame_users_source_state',
      help: 'Where the users document comes from and whether the daemon is in touch with it: 1 for the current state, 0 for the others.',
      type: 'gauge',
      samples: USERS_SOURCE_STATES.map((state) => ({ labels: { state }, value: state === s.state ? 1 : 0 })),
    },
  ];
  if (s.lastSyncMs !== undefined) families.push({ name: 'sesame_users_last_sync_timestamp_seconds', help: 'When the users document in force was loaded, in seconds since the Unix epoch.', type: 'gauge', samples: [{ value: s.lastSyncMs / 1000 }] });
  if (s.version !== undefined) families.push({ name: 'sesame_users_document_version', help: 'Version of the users document in force (users file: loads since the daemon started; etcd: the revision).', type: 'gauge', samples: [{ value: s.version }] });
  return families;
}

export type ReloadedDocument = 'users' | 'config';

/** What the page is made of, read at scrape time. */
export interface ScrapeInputs {
  /** Drops by reason, as the drop log counts them (log.ts DropLog.totals). */
  readonly drops: ReadonlyMap<AnyDrop, number>;
  /** Grants in the kernel now; undefined if the kernel could not be read (the series is then left out). */
  readonly grantsOpen: number | undefined;
  readonly usersSource: UsersSourceStatus;
}

/** The counters and histograms the daemon adds to; plain numbers, so recording costs a few additions. */
export class Metrics {
  #accepted = 0;
  readonly #grantLatency = new Histogram(METRICS.latencyBucketsSeconds);
  readonly #revokeLatency = new Histogram(METRICS.latencyBucketsSeconds);
  readonly #reloads = new Map<string, number>();

  /** A knock's grants are in the kernel, latencyMs after the packet was received. */
  granted(latencyMs: number): void {
    this.#accepted++;
    this.#grantLatency.observe(latencyMs / 1000);
  }

  /** A users document that revokes keys was read, and latencyMs later the kernel held none of their grants. */
  revoked(latencyMs: number): void {
    this.#revokeLatency.observe(latencyMs / 1000);
  }

  reloaded(document: ReloadedDocument, ok: boolean): void {
    const key = `${document} ${ok ? 'ok' : 'failed'}`;
    this.#reloads.set(key, (this.#reloads.get(key) ?? 0) + 1);
  }

  families(inputs: ScrapeInputs): Family[] {
    const reloads: Sample[] = [];
    for (const document of ['users', 'config'] as const) {
      for (const result of ['ok', 'failed'] as const) reloads.push({ labels: { document, result }, value: this.#reloads.get(`${document} ${result}`) ?? 0 });
    }
    const families: Family[] = [
      { name: 'sesame_knocks_accepted_total', help: 'Knocks whose grants the kernel holds (every check passed, the replay record durable, nft acknowledged).', type: 'counter', samples: [{ value: this.#accepted }] },
      {
        name: 'sesame_knocks_dropped_total',
        help: 'Packets dropped, by reason (README "Checks, in order"; bad_frame_* in pcap mode).',
        type: 'counter',
        samples: ALL_DROPS.map((reason) => ({ labels: { reason }, value: inputs.drops.get(reason) ?? 0 })),
      },
    ];
    if (inputs.grantsOpen !== undefined) families.push({ name: 'sesame_grants_open', help: "Grants in the kernel's grant maps now (read from nftables at scrape time).", type: 'gauge', samples: [{ value: inputs.grantsOpen }] });
    families.push(
      { name: 'sesame_grant_latency_seconds', help: 'From receiving a knock to nftables acknowledging its grants.', type: 'histogram', histogram: this.#grantLatency.snapshot() },
      { name: 'sesame_revoke_latency_seconds', help: 'From reading a users document that revokes keys to the kernel holding none of their grants (grants closed, sessions cut).', type: 'histogram', histogram: this.#revokeLatency.snapshot() },
      { name: 'sesame_reloads_total', help: 'Reloads of the users document and of the config, by result.', type: 'counter', samples: reloads },
      ...usersSourceFamilies(inputs.usersSource),
    );
    return families;
  }
}

/**
 * The number of grants the kernel holds, for scrapes: one listing at a time, and a listing younger than
 * METRICS.grantsReadMinIntervalMs is reused, so a burst of scrapes costs one nft run. undefined when the listing failed.
 */
export function kernelGrantCount(count: () => Promise<number>, now: () => number, onError: (err: unknown) => void): () => Promise<number | undefined> {
  let last: { atMs: number; count: number | undefined } | undefined;
  let pending: Promise<number | undefined> | undefined;
  return () => {
    if (last !== undefined && now() - last.atMs < METRICS.grantsReadMinIntervalMs) return Promise.resolve(last.count);
    pending ??= count()
      .catch((err: unknown) => {
        onError(err);
        return undefined;
      })
      .then((n) => {
        last = { atMs: now(), count: n };
        pending = undefined;
        return n;
      });
    return pending;
  };
}

/** The users file's status, kept by the daemon: state "file", when it was last loaded, and how many times (its version). */
export function fileSourceStatus(now: () => number): { loaded(): void; status(): UsersSourceStatus } {
  let lastSyncMs = now();
  let version = 1;
  return {
    loaded: () => {
      lastSyncMs = now();
      version++;
    },
    status: () => ({ state: 'file', lastSyncMs, version }),
  };
}

export interface ServeOptions {
  readonly drops: ReadonlyMap<AnyDrop, number>;
  /** How many grants the kernel holds (grant-count.ts). */
  readonly countGrants: () => Promise<number>;
  readonly usersSource: () => UsersSourceStatus;
  readonly now: () => number;
  readonly log: Logger;
}

/** Opens the endpoint the config asks for (none: undefined); each scrape renders the counters, the drop totals, the kernel's grant count and the users source. */
export async function serveMetrics(listen: MetricsListen | undefined, metrics: Metrics, o: ServeOptions): Promise<MetricsEndpoint | undefined> {
  if (listen === undefined) return undefined;
  const grantsOpen = kernelGrantCount(o.countGrants, o.now, (err) => o.log.warn({ event: 'metrics.grants_unreadable', err: errorMessage(err) }, 'could not read the grants from the kernel for /metrics'));
  const page = async (): Promise<string> => render(metrics.families({ drops: o.drops, grantsOpen: await grantsOpen(), usersSource: o.usersSource() }));
  return openMetricsEndpoint(listen, page, (err) => o.log.warn({ event: 'metrics.failed', err: errorMessage(err) }, 'the metrics endpoint failed a request'));
}
