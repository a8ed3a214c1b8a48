// Step 3 of the packet path: a token bucket per source (IPv4 address, IPv6 /64), after mac1 and before any public-key work. Bounded table, injected clock.
import { RATE_LIMIT } from '../limits.ts';

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface RateLimitOptions {
  readonly perSecond: number;
  readonly burst: number;
  readonly maxSources: number;
  readonly now: () => number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly opts: RateLimitOptions;
  private nextEvictMs = 0;

  constructor(opts: RateLimitOptions) {
    this.opts = opts;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token for `key`; false when the source is over its rate. */
  admit(key: string): boolean {
    const now = this.opts.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.opts.maxSources && !this.evict(now)) return false;
      bucket = { tokens: this.opts.burst, updatedMs: now };
      this.buckets.set(key, bucket);
    } else {
      const refill = ((now - bucket.updatedMs) / 1000) * this.opts.perSecond;
      bucket.tokens = Math.min(this.opts.burst, bucket.tokens + Math.max(0, refill));
      bucket.updatedMs = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
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
