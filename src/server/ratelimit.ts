// Step 3 of the packet path: the budget for public-key work, after mac1 and before any box is opened. A token bucket per source (IPv4 address, IPv6 /64) and one global bucket; when the global one runs low, only sources that have been quiet are served, so a few busy sources cannot take what others need, and sources that knocked successfully before keep a reserve of their own. Bounded tables, injected clock.
import { RATE_LIMIT } from '../limits.ts';
import { DROP } from '../protocol/reasons.ts';

interface Bucket {
  tokens: number;
  updatedMs: number;
  /** When this source last got a box open. */
  openedMs?: number;
}

export interface RateLimitOptions {
  readonly perSecond: number;
  readonly burst: number;
  readonly maxSources: number;
  readonly now: () => number;
  /** Box opens per second for all sources together (burst the same); unbounded when absent. */
  readonly globalPerSecond?: number;
}

export type Admission = 'ok' | typeof DROP.rateLimited | typeof DROP.busy;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly opts: RateLimitOptions;
  private readonly global: Bucket;
  /** Sources that sent an accepted knock (most recent last), with a global budget of their own. */
  private readonly vouched = new Set<string>();
  private readonly vouchedBudget: Bucket;
  private nextEvictMs = 0;

  constructor(opts: RateLimitOptions) {
    this.opts = opts;
    this.global = { tokens: opts.globalPerSecond ?? 0, updatedMs: opts.now() };
    this.vouchedBudget = { tokens: RATE_LIMIT.vouchedOpensPerSecond, updatedMs: opts.now() };
  }

  /**
   * Records that `key` sent a knock that was accepted (signed by a listed, unrevoked key). Such sources draw on a
   * reserve when the global budget is spent, so a flood by holders of server.pub (revoked users included) from forged
   * sources cannot starve users where they knocked from before. Bounded: the least recently vouched source goes first.
   */
  vouch(key: string): void {
    this.vouched.delete(key);
    this.vouched.add(key);
    if (this.vouched.size > RATE_LIMIT.maxVouchedSources) for (const oldest of this.vouched) { this.vouched.delete(oldest); break; }
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token for `key`; false when the source (or everyone) is over its rate. */
  admit(key: string): boolean {
    return this.take(key) === 'ok';
  }

  /**
   * The source's bucket first (rate_limited), then the global one (busy). The global bucket's lower half is kept for
   * quiet sources, which got no box open in the last RATE_LIMIT.quietAfterMs: a legitimate knock still gets one while
   * sources that keep sending have spent the upper half. (Forged sources that each send once all look quiet: against
   * those only the global bound holds, README.md "Floods".)
   */
  take(key: string): Admission {
    const now = this.opts.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.opts.maxSources && !this.evict(now)) return DROP.rateLimited;
      bucket = { tokens: this.opts.burst, updatedMs: now };
      this.buckets.set(key, bucket);
    } else refill(bucket, now, this.opts.perSecond, this.opts.burst);
    if (bucket.tokens < 1) return DROP.rateLimited;
    bucket.tokens -= 1;
    const perSecond = this.opts.globalPerSecond;
    if (perSecond === undefined) return 'ok';
    refill(this.global, now, perSecond, perSecond);
    const quiet = bucket.openedMs === undefined || now - bucket.openedMs >= RATE_LIMIT.quietAfterMs;
    if (this.global.tokens >= 1 && (quiet || this.global.tokens >= perSecond / 2)) this.global.tokens -= 1;
    else if (!this.vouched.has(key)) return DROP.busy;
    else {
      refill(this.vouchedBudget, now, RATE_LIMIT.vouchedOpensPerSecond, RATE_LIMIT.vouchedOpensPerSecond);
      if (this.vouchedBudget.tokens < 1) return DROP.busy;
      this.vouchedBudget.tokens -= 1;
    }
    bucket.openedMs = now;
    return 'ok';
  }

  /**
   * Frees room by dropping buckets that have refilled (their sources are idle, forgetting them loses nothing).
   * If every source is still busy the table stays full and new sources wait: bounded memory wins over fairness.
   */
  private evict(now: number): boolean {
    if (now < this.nextEvictMs) return false;
    this.nextEvictMs = now + RATE_LIMIT.evictScanEveryMs;
    const fullAfterMs = (this.opts.burst / this.opts.perSecond) * 1000;
    for (const [key, b] of this.buckets) if (now - b.updatedMs >= fullAfterMs) this.buckets.delete(key);
    return this.buckets.size < this.opts.maxSources;
  }
}

function refill(bucket: Bucket, now: number, perSecond: number, burst: number): void {
  const added = ((now - bucket.updatedMs) / 1000) * perSecond;
  bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, added));
  bucket.updatedMs = now;
}
