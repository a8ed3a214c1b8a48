// Structured logs (pino JSON on stdout): one event per decision, drops counted and rate-limited per reason, so junk cannot hide a security event. Never logs keys, packets or plaintext.
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Address } from '../protocol/address.ts';
import { DROP } from '../protocol/reasons.ts';
import type { DropReason } from '../protocol/reasons.ts';
import { FRAME_DROP } from '../protocol/frame.ts';
import type { FrameDrop } from '../protocol/frame.ts';

/** Packet drops (reasons.ts) and, in pcap mode, frame drops (wire.ts). */
export type AnyDrop = DropReason | FrameDrop;

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } });
}

/**
 * Drops anyone can cause without a key, which name no user: they share one budget. Every other reason involves a key, a
 * user or the server's own state (revoked, bad_signature, replay, stale, rate_limited, replay_unavailable, ...) and has a
 * budget of its own, so a flood of one reason cannot hide another; a reason added later gets its own budget too.
 */
const JUNK: ReadonlySet<AnyDrop> = new Set<AnyDrop>([DROP.badSource, DROP.badLength, DROP.badVersion, DROP.badToken, DROP.badMac, DROP.badBox, ...Object.values(FRAME_DROP)]);
const JUNK_BUDGET = 'junk';
type Budget = AnyDrop | typeof JUNK_BUDGET;
const budgetOf = (reason: AnyDrop): Budget => (JUNK.has(reason) ? JUNK_BUDGET : reason);

export interface DropLogOptions {
  /**
   * Drop lines logged per interval for each budget (each non-junk reason, and all junk reasons together); the rest are
   * only counted. Reasons are a closed set, so an interval has at most perInterval × budgets lines and one summary.
   */
  readonly perInterval: number;
  readonly intervalMs: number;
  readonly now: () => number;
}

/** Counts every drop by reason; logs the first few per interval and budget and a summary of the rest, so a flood cannot flood the log. */
export class DropLog {
  readonly totals = new Map<AnyDrop, number>();
  private suppressed = new Map<AnyDrop, number>();
  private readonly logged = new Map<Budget, number>();
  private intervalEndsMs = 0;
  private readonly log: Logger;
  private readonly opts: DropLogOptions;

  constructor(log: Logger, opts: DropLogOptions) {
    this.log = log;
    this.opts = opts;
  }

  record(reason: AnyDrop, source: Address | undefined, detail?: Readonly<Record<string, string | number>>): void {
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + 1);
    const now = this.opts.now();
    if (now >= this.intervalEndsMs) this.roll(now);
    const budget = budgetOf(reason);
    const used = this.logged.get(budget) ?? 0;
    if (used < this.opts.perInterval) {
      this.logged.set(budget, used + 1);
      this.log.info({ event: 'knock.dropped', reason, ...(source === undefined ? {} : { source: source.text }), ...detail }, hint(reason, detail));
    } else this.suppressed.set(reason, (this.suppressed.get(reason) ?? 0) + 1);
  }

  /** Emits the summary of suppressed drops, by reason, if any; called on each new interval and at shutdown. */
  flush(): void {
    if (this.suppressed.size > 0) this.log.info({ event: 'knock.dropped.suppressed', counts: Object.fromEntries(this.suppressed) }, 'more knocks dropped than logged');
    this.suppressed = new Map();
  }

  private roll(now: number): void {
    this.flush();
    this.logged.clear();
    this.intervalEndsMs = now + this.opts.intervalMs;
  }
}

/** A human line next to the machine fields, where the code alone would leave an admin guessing. */
function hint(reason: AnyDrop, detail?: Readonly<Record<string, string | number>>): string {
  if (reason === 'old_version') return 'protocol version 1 knock: the client must be upgraded';
  if (reason === 'stale' && detail !== undefined && typeof detail['skewMs'] === 'number') {
    const s = (Math.abs(detail['skewMs']) / 1000).toFixed(1);
    return `knock timestamp is ${s} s ${detail['skewMs'] < 0 ? 'behind' : 'ahead of'} the server clock (window ±${Number(detail['windowMs']) / 1000} s): check the client's clock`;
  }
  return 'knock dropped';
}
