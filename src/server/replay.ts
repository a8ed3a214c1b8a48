// Steps 2 (seen packet) and 8 (replay commit) of the packet path: the record of accepted knocks (in memory, and on disk through replay-file.ts), so a restart (even kill -9) cannot reopen a used knock. Input: verified, fresh knocks only.
//
// On disk: segment files replay-<first ms>.log, a new one each window, each the 16-byte magic "sesame/replay/v2" then records of
// digest (16 B) | the knock's own timestamp (ms since the epoch, 64-bit big-endian). A file without the magic is a
// version 1 segment (records of digest | expiry, no header), still read: its expiry is an upper bound on the knock's
// timestamp, so it is loaded as if it were the timestamp. A torn final record (crash mid-write) is ignored.
//
// Retention: a knock is fresh while |now - timestamp| <= window. In memory a record lives until its timestamp + the window
// in force now, also for records loaded at start, so a restart with a larger window still refuses knocks seen before.
// On disk a segment lives until its newest timestamp + CEILING.freshnessWindowMs, the largest window any config can set:
// no later config finds fresh a knock whose record is gone.
//
// Faults: all file work happens in durable(), never in checkAndCommit(), which cannot throw. A batch that does not reach
// the disk rejects its durable() (the knock opens nothing), its bytes are cut off again so later records stay aligned
// (or the segment is left behind if they cannot be), and the next batch retries, in a new segment if needed.
import { errorMessage } from '../errors.ts';
import { CEILING, REPLAY } from '../limits.ts';
import { concat, toHex, utf8 } from '../protocol/bytes.ts';
import type { KeyId } from '../protocol/bytes.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { KEY_BYTES, LABEL } from '../protocol/layout.ts';
import { sodium } from '../protocol/sodium.ts';
import { ReplayFiles, replayRecord } from './replay-file.ts';

const DIGEST_BYTES = KEY_BYTES.replayDigest;
/** Replay digest = BLAKE2b-128("sesame/v2/replay" || key id || exact payload bytes). */
export function replayDigest(id: KeyId, payloadBytes: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(DIGEST_BYTES, concat(utf8(LABEL.replay), id, payloadBytes), null);
}

interface Batch {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export interface ReplayOptions {
  readonly dir: string;
  readonly windowMs: number;
  readonly maxEntries: number;
  readonly now: () => number;
}

/**
 * Digests of accepted knocks, each kept while its timestamp is within the window.
 * checkAndCommit is synchronous (no await between check and commit) and touches no file; durable() resolves once the
 * caller's record is fdatasync'ed, so callers open the firewall only for knocks that are on disk.
 */
export class ReplayStore {
  /** Digest -> the first ms at which its knock is stale. */
  private readonly seen = new Map<string, number>();
  /** mac1 of accepted packets, memory only: lets byte-for-byte replays die before any public-key work. */
  private readonly macs = new Map<string, number>();
  private readonly files: ReplayFiles;
  private pending: Uint8Array[] = [];
  private pendingNewestMs = 0;
  private batch: Batch | undefined;
  /** Records committed, records some durable() call has answered for, and the last record a failed write lost (counts). */
  private committed = 0;
  private claimed = 0;
  private lost = 0;
  private lostError = '';
  private closed = false;
  private nextPruneMs = 0;
  private readonly opts: ReplayOptions;

  constructor(opts: ReplayOptions) {
    this.opts = opts;
    this.files = new ReplayFiles(opts.dir);
    const now = opts.now();
    this.files.load((digestHex, timestampMs) => {
      const staleMs = this.staleAt(timestampMs);
      if (staleMs > now) this.seen.set(digestHex, staleMs);
    });
    this.prune(now);
  }

  get size(): number {
    return this.seen.size;
  }

  /** Cheap early check: was this exact packet (identified by its mac1) accepted already? */
  seenPacket(mac1: Uint8Array): boolean {
    return this.macs.has(toHex(mac1));
  }

  /** Never throws: a full table is a drop; a disk fault shows in durable(). */
  checkAndCommit(digest: Uint8Array, mac1: Uint8Array, timestampMs: number): Result<true> {
    const key = toHex(digest);
    if (this.seen.has(key)) return drop(DROP.replay);
    const now = this.opts.now();
    if (now >= this.nextPruneMs || this.seen.size >= this.opts.maxEntries) this.prune(now);
    if (this.seen.size >= this.opts.maxEntries) return drop(DROP.replayFull, { entries: this.seen.size });
    // Kept in memory even if the write fails: that knock opens nothing, and a copy of it is refused in this process.
    const staleMs = this.staleAt(timestampMs);
    this.seen.set(key, staleMs);
    this.macs.set(toHex(mac1), staleMs);
    this.pending.push(replayRecord(digest, timestampMs));
    this.pendingNewestMs = Math.max(this.pendingNewestMs, timestampMs);
    this.committed++;
    return ok(true);
  }

  /**
   * Resolves once every record committed before this call is on disk; rejects if any of them is not (disk full,
   * read-only, directory gone), also for a record that an earlier failed write lost. Concurrent callers share one fdatasync.
   */
  durable(): Promise<void> {
    const from = this.claimed;
    this.claimed = this.committed;
    if (this.lost > from) return Promise.reject(new Error(`the replay record was not written: ${this.lostError}`));
    if (this.pending.length === 0) return Promise.resolve();
    if (this.batch === undefined) {
      let resolve = (): void => {};
      let reject = (_err: Error): void => {};
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.batch = { promise, resolve, reject };
      setImmediate(() => this.writeOut());
    }
    return this.batch.promise;
  }

  /** Writes every pending record and settles the batch waiting for them. */
  private writeOut(): void {
    const batch = this.batch;
    const records = this.pending;
    const newestMs = this.pendingNewestMs;
    this.batch = undefined;
    this.pending = [];
    this.pendingNewestMs = 0;
    try {
      if (this.closed) throw new Error('the replay record is closed');
      if (records.length > 0) this.files.append(records, newestMs, this.opts.now(), this.opts.windowMs);
      batch?.resolve();
    } catch (err) {
      this.lost = this.committed;
      this.lostError = errorMessage(err);
      batch?.reject(err instanceof Error ? err : new Error(this.lostError));
    }
  }

  /** The first ms at which a knock with this timestamp is outside the window in force. */
  private staleAt(timestampMs: number): number {
    return timestampMs + this.opts.windowMs + 1;
  }

  private prune(now: number): void {
    for (const [key, staleMs] of this.seen) if (staleMs <= now) this.seen.delete(key);
    for (const [key, staleMs] of this.macs) if (staleMs <= now) this.macs.delete(key);
    this.files.prune(now, Math.max(CEILING.freshnessWindowMs, this.opts.windowMs));
    this.nextPruneMs = now + Math.max(REPLAY.minPruneEveryMs, this.opts.windowMs / 4);
  }

  /** Writes what is pending (settling its waiters) and closes the segment; later commits are refused by durable(). */
  close(): void {
    if (this.pending.length > 0) this.writeOut();
    this.closed = true;
    this.files.close();
  }
}
