// The replay record's files: segments replay-<first ms>.log, each the magic "sesame/replay/v2" then records of digest (16 B) | the knock's timestamp (ms, 64-bit big-endian); version 1 segments (digest | expiry, no magic) are still read. Appends are completed or cut back to a record boundary; a torn final record is ignored on load. Trusts nothing read from disk beyond its length.
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from '../errors.ts';
import { syncDirectory } from '../files.ts';
import { concat, utf8 } from '../protocol/bytes.ts';
import { KEY_BYTES } from '../protocol/layout.ts';

const DIGEST_BYTES = KEY_BYTES.replayDigest;
const RECORD_BYTES = DIGEST_BYTES + 8;
const MAGIC = utf8('sesame/replay/v2');
const SEGMENT = /^replay-(\d{13,16})\.log$/;

/** One record, ready to append. */
export function replayRecord(digest: Uint8Array, timestampMs: number): Uint8Array {
  const record = new Uint8Array(RECORD_BYTES);
  record.set(digest);
  new DataView(record.buffer).setBigUint64(DIGEST_BYTES, BigInt(timestampMs));
  return record;
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

export class ReplayFiles {
  private readonly segments: Segment[] = [];
  private out: Output | undefined;
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Reads every segment, oldest first, handing on each whole record. */
  load(record: (digestHex: string, timestampMs: number) => void): void {
    for (const name of readdirSync(this.dir).sort()) {
      const m = SEGMENT.exec(name);
      if (m === null) continue;
      const path = join(this.dir, name);
      const data = readFileSync(path);
      const startMs = Number(m[1]);
      const segment: Segment = { path, startMs, newestMs: startMs };
      const first = data.length >= MAGIC.length && data.subarray(0, MAGIC.length).equals(MAGIC) ? MAGIC.length : 0;
      for (let at = first; at + RECORD_BYTES <= data.length; at += RECORD_BYTES) {
        const timestampMs = Number(data.readBigUInt64BE(at + DIGEST_BYTES));
        segment.newestMs = Math.max(segment.newestMs, timestampMs);
        record(data.toString('hex', at, at + DIGEST_BYTES), timestampMs);
      }
      this.segments.push(segment);
    }
  }

  /** Appends whole records and fdatasyncs them; throws (having cut the file back to a record boundary) if they are not on disk. */
  append(records: readonly Uint8Array[], newestMs: number, now: number, windowMs: number): void {
    const out = this.output(now, windowMs);
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
  private output(now: number, windowMs: number): Output {
    const current = this.out;
    if (current !== undefined && now - current.segment.startMs < windowMs) return current;
    if (current !== undefined) {
      this.out = undefined;
      closeQuietly(current.fd); // its records are fdatasync'ed already
    }
    const last = this.segments[this.segments.length - 1];
    const startMs = Math.max(now, last === undefined ? 0 : last.startMs + 1); // never a name in use
    const segment: Segment = { path: join(this.dir, `replay-${String(startMs).padStart(13, '0')}.log`), startMs, newestMs: startMs };
    const fd = openSync(segment.path, 'a', 0o600);
    this.segments.push(segment);
    try {
      syncDirectory(this.dir);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    this.out = { segment, fd, bytes: 0 };
    return this.out;
  }

  /** Deletes segments whose newest knock is older than keepMs (a delete that fails is tried again next time). */
  prune(now: number, keepMs: number): void {
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
  }

  close(): void {
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
