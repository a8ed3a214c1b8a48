// Steps 2 (seen packet) and 8 (replay commit) of the packet path: the record of accepted knocks, persisted so a restart (even kill -9) cannot reopen a used knock. Input: verified, fresh knocks only.
import { closeSync, fdatasyncSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import { REPLAY } from '../limits.ts';
import { syncDirectory } from '../files.ts';
import { concat, toHex, utf8 } from '../protocol/bytes.ts';
import type { KeyId } from '../protocol/bytes.ts';
import { DROP, drop, ok } from '../protocol/reasons.ts';
import type { Result } from '../protocol/reasons.ts';
import { KEY_BYTES, LABEL } from '../protocol/layout.ts';
import { sodium } from '../protocol/sodium.ts';

const DIGEST_BYTES = KEY_BYTES.replayDigest;
/** A record on disk: digest, then its expiry (ms since the epoch, 64-bit big-endian). */
const RECORD_BYTES = DIGEST_BYTES + 8;
const SEGMENT = /^replay-(\d{13,16})\.log$/;

/** Replay digest = BLAKE2b-128("sesame/v1/replay" || key id || exact payload bytes). */
export function replayDigest(id: KeyId, payloadBytes: Uint8Array): Uint8Array {
  return sodium().crypto_generichash(DIGEST_BYTES, concat(utf8(LABEL.replay), id, payloadBytes), null);
}

interface Segment {
  readonly path: string;
  readonly startMs: number;
  maxExpiresMs: number;
}

export interface ReplayOptions {
  readonly dir: string;
  readonly windowMs: number;
  readonly maxEntries: number;
  readonly now: () => number;
}

/**
 * Digests of accepted knocks, each kept until its timestamp leaves the window.
 * checkAndCommit is synchronous (no await between check and commit); durable() resolves once every
 * committed record is fdatasync'ed, so callers open the firewall only for knocks that are on disk.
 */
export class ReplayStore {
  private readonly seen = new Map<string, number>();
  /** mac1 of accepted packets, memory only: lets byte-for-byte replays die before any public-key work. */
  private readonly macs = new Map<string, number>();
  private readonly segments: Segment[] = [];
  private fd = -1;
  private pending: Uint8Array[] = [];
  private flushing: Promise<void> | undefined;
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
      const segment: Segment = { path, startMs: Number(m[1]), maxExpiresMs: 0 };
      // A torn final record (crash mid-write) is ignored: its knock never reached the firewall.
      for (let at = 0; at + RECORD_BYTES <= data.length; at += RECORD_BYTES) {
        const expiresMs = Number(data.readBigUInt64BE(at + DIGEST_BYTES));
        segment.maxExpiresMs = Math.max(segment.maxExpiresMs, expiresMs);
        if (expiresMs > now) this.seen.set(data.toString('hex', at, at + DIGEST_BYTES), expiresMs);
      }
      this.segments.push(segment);
    }
    this.prune(now);
  }

  /** Cheap early check: was this exact packet (identified by its mac1) accepted already? */
  seenPacket(mac1: Uint8Array): boolean {
    return this.macs.has(toHex(mac1));
  }

  checkAndCommit(digest: Uint8Array, mac1: Uint8Array, timestampMs: number): Result<true> {
    const key = toHex(digest);
    if (this.seen.has(key)) return drop(DROP.replay);
    const now = this.opts.now();
    const segment = this.currentSegment(now);
    if (now >= this.nextPruneMs || this.seen.size >= this.opts.maxEntries) this.prune(now);
    if (this.seen.size >= this.opts.maxEntries) return drop(DROP.replayFull, { entries: this.seen.size });
    const expiresMs = Math.max(timestampMs, now) + this.opts.windowMs;
    this.seen.set(key, expiresMs);
    this.macs.set(toHex(mac1), expiresMs);
    const record = new Uint8Array(RECORD_BYTES);
    record.set(digest);
    new DataView(record.buffer).setBigUint64(DIGEST_BYTES, BigInt(expiresMs));
    segment.maxExpiresMs = Math.max(segment.maxExpiresMs, expiresMs);
    this.pending.push(record);
    return ok(true);
  }

  /** Resolves once every record committed so far is on disk; concurrent callers share one fdatasync. */
  durable(): Promise<void> {
    if (this.pending.length === 0 && this.flushing === undefined) return Promise.resolve();
    this.flushing ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.flushing = undefined;
        try {
          this.flush();
          resolve();
        } catch (err) {
          reject(err instanceof Error ? err : new Error(errorMessage(err)));
        }
      });
    });
    return this.flushing;
  }

  private flush(): void {
    if (this.pending.length === 0 || this.fd < 0) return;
    const batch = concat(...this.pending);
    this.pending = [];
    writeSync(this.fd, batch);
    fdatasyncSync(this.fd);
  }

  private currentSegment(now: number): Segment {
    const last = this.segments[this.segments.length - 1];
    if (last !== undefined && this.fd >= 0 && now - last.startMs < this.opts.windowMs) return last;
    if (this.fd >= 0) {
      this.flush();
      closeSync(this.fd);
    }
    const segment: Segment = { path: join(this.opts.dir, `replay-${String(now).padStart(13, '0')}.log`), startMs: now, maxExpiresMs: 0 };
    this.fd = openSync(segment.path, 'a', 0o600);
    syncDirectory(this.opts.dir);
    this.segments.push(segment);
    return segment;
  }


  private prune(now: number): void {
    for (const [key, expiresMs] of this.seen) if (expiresMs <= now) this.seen.delete(key);
    for (const [key, expiresMs] of this.macs) if (expiresMs <= now) this.macs.delete(key);
    const current = this.segments[this.segments.length - 1];
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (s === undefined || (s === current && this.fd >= 0) || s.maxExpiresMs > now) continue;
      unlinkSync(s.path);
      this.segments.splice(i, 1);
    }
    this.nextPruneMs = now + Math.max(REPLAY.minPruneEveryMs, this.opts.windowMs / 4);
  }

  close(): void {
    this.flush();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
