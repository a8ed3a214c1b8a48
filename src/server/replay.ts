// Steps 2 (seen packet) and 8 (replay commit) of the packet path: the record of accepted knocks, persisted so a restart (even kill -9) cannot reopen a used knock. Input: verified, fresh knocks only.
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
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, errorMessage } from '../errors.ts';
import { CEILING, REPLAY } from '../limits.ts';
import { syncDirectory } from '../files.ts';
import { concat, toHex, utf8 } from '../protocol/bytes.ts';
import type { KeyId } from '../protocol/bytes.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { KEY_BYTES, LABEL } from '../protocol/layout.ts';
import { sodium } from '../protocol/sodium.ts';

const DIGEST_BYTES = KEY_BYTES.replayDigest;
const RECORD_BYTES = DIGEST_BYTES + 8;
const MAGIC = utf8('sesame/replay/v2');
const SEGMENT = /^replay-(\d{13,16})\.log$/;

/** Replay digest = BLAKE2b-128("sesame/v1/replay" || key id || exact payload bytes). */
export function replayDigest(id: KeyId, payloadBytes: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(DIGEST_BYTES, concat(utf8(LABEL.replay), id, payloadBytes), null);
}

interface Segment {
  readonly path: string;
  readonly startMs: number;
  /** At least the newest timestamp in the file (version 1: the newest expiry). */
  newestMs: number;
}

/** The segment being appended to: its descriptor and how many bytes of it are whole (magic and records). */
interface Output {
  readonly segment: Segment;
  readonly fd: number;
  bytes: number;
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
  private readonly segments: Segment[] = [];
  private out: Output | undefined;
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
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.load();
  }

  get size(): number {
    return this.seen.size;
  }

  private load(): void {
    const now = this.opts.now();
    for (const name of readdirSync(this.opts.dir).sort()) {
      const m = SEGMENT.exec(name);
      if (m === null) continue;
      const path = join(this.opts.dir, name);
      const data = readFileSync(path);
      const startMs = Number(m[1]);
      const segment: Segment = { path, startMs, newestMs: startMs };
      const first = data.length >= MAGIC.length && data.subarray(0, MAGIC.length).equals(MAGIC) ? MAGIC.length : 0;
      for (let at = first; at + RECORD_BYTES <= data.length; at += RECORD_BYTES) {
        const timestampMs = Number(data.readBigUInt64BE(at + DIGEST_BYTES));
        segment.newestMs = Math.max(segment.newestMs, timestampMs);
        const staleMs = this.staleAt(timestampMs);
        if (staleMs > now) this.seen.set(data.toString('hex', at, at + DIGEST_BYTES), staleMs);
      }
      this.segments.push(segment);
    }
    this.prune(now);
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
    const record = new Uint8Array(RECORD_BYTES);
    record.set(digest);
    new DataView(record.buffer).setBigUint64(DIGEST_BYTES, BigInt(timestampMs));
    this.pending.push(record);
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
      if (records.length > 0) this.append(records, newestMs);
      batch?.resolve();
    } catch (err) {
      this.lost = this.committed;
      this.lostError = errorMessage(err);
      batch?.reject(err instanceof Error ? err : new Error(this.lostError));
    }
  }

  private append(records: readonly Uint8Array[], newestMs: number): void {
    if (this.closed) throw new Error('the replay record is closed');
    const out = this.output(this.opts.now());
    const bytes = concat(...(out.bytes === 0 ? [MAGIC] : []), ...records);
    out.segment.newestMs = Math.max(out.segment.newestMs, newestMs);
    try {
      writeAll(out.fd, bytes);
      fdatasyncSync(out.fd);
      if (fstatSync(out.fd).nlink === 0) throw new Error(`ENOENT: replay segment ${out.segment.path} was deleted`);
    } catch (err) {
      this.cutBack(out);
      throw err;
    }
    out.bytes += bytes.length;
  }

  /** Undoes a failed write, so the next one starts on a record boundary; if that fails too, the segment ends here, torn tail and all. */
  private cutBack(out: Output): void {
    try {
      ftruncateSync(out.fd, out.bytes);
      if (fstatSync(out.fd).nlink > 0) return;
    } catch {
      // read-only, or the file is gone: leave it
    }
    this.out = undefined;
    closeQuietly(out.fd);
  }

  /** The segment to append to: a new one when there is none or the current one spans a window. */
  private output(now: number): Output {
    const current = this.out;
    if (current !== undefined && now - current.segment.startMs < this.opts.windowMs) return current;
    if (current !== undefined) {
      this.out = undefined;
      closeQuietly(current.fd); // its records are fdatasync'ed already
    }
    const last = this.segments[this.segments.length - 1];
    const startMs = Math.max(now, last === undefined ? 0 : last.startMs + 1); // never a name in use
    const segment: Segment = { path: join(this.opts.dir, `replay-${String(startMs).padStart(13, '0')}.log`), startMs, newestMs: startMs };
    const fd = openSync(segment.path, 'a', 0o600);
    this.segments.push(segment);
    try {
      syncDirectory(this.opts.dir);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    this.out = { segment, fd, bytes: 0 };
    return this.out;
  }

  /** The first ms at which a knock with this timestamp is outside the window in force. */
  private staleAt(timestampMs: number): number {
    return timestampMs + this.opts.windowMs + 1;
  }

  private prune(now: number): void {
    for (const [key, staleMs] of this.seen) if (staleMs <= now) this.seen.delete(key);
    for (const [key, staleMs] of this.macs) if (staleMs <= now) this.macs.delete(key);
    const keepMs = Math.max(CEILING.freshnessWindowMs, this.opts.windowMs);
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (s === undefined || s === this.out?.segment || now <= s.newestMs + keepMs) continue;
      try {
        unlinkSync(s.path);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') continue; // read-only for now: try again at the next prune
      }
      this.segments.splice(i, 1);
    }
    this.nextPruneMs = now + Math.max(REPLAY.minPruneEveryMs, this.opts.windowMs / 4);
  }

  /** Writes what is pending (settling its waiters) and closes the segment; later commits are refused by durable(). */
  close(): void {
    if (this.pending.length > 0) this.writeOut();
    this.closed = true;
    if (this.out !== undefined) closeQuietly(this.out.fd);
    this.out = undefined;
  }
}

/** writeSync may write less than asked: go on from where it stopped; no progress at all is a failure, not a loop. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    const n = writeSync(fd, bytes, at, bytes.length - at);
    if (n <= 0) throw new Error(`short write: ${at} of ${bytes.length} bytes of the replay record written`);
    at += n;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // nothing more to lose: the records were fdatasync'ed or reported lost
  }
}
