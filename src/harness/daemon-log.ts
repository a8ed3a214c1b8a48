// The daemon's JSON log lines (pino) as they arrive from its stdout, with waits on them; for the demo and the tests. Trusts nothing in a line: non-JSON lines, non-objects and objects whose event or reason is not a string are skipped.
import type { Readable } from 'node:stream';

/** One parsed log line: pino's fields plus the daemon's own; event and reason, when present, are strings. */
export interface LogEvent {
  readonly event?: string;
  readonly reason?: string;
  readonly [key: string]: unknown;
}

/** What DaemonLog reads: a started daemon with stdout and stderr piped. */
export interface LoggingProcess {
  readonly stdout: Readable;
  readonly stderr: Readable;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const isLogEvent = (v: unknown): v is LogEvent =>
  isRecord(v) && (v['event'] === undefined || typeof v['event'] === 'string') && (v['reason'] === undefined || typeof v['reason'] === 'string');

/** A field as text for a message: strings and numbers as they are, arrays joined with commas, anything else '?'. */
export const field = (e: LogEvent, key: string): string => {
  const v = e[key];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : Array.isArray(v) ? v.join(',') : '?';
};

interface Waiter {
  readonly match: (e: LogEvent) => boolean;
  readonly resolve: (e: LogEvent) => void;
  readonly reject: (err: Error) => void;
}

/** The daemon's log events in arrival order, and waits on them that fail at once if the daemon exits. */
export class DaemonLog {
  /** Every event so far, in order; an index into it is the `since` of a wait. */
  readonly events: LogEvent[] = [];
  /** performance.now() at the arrival of each event, index for index with events. */
  readonly arrivedMs: number[] = [];
  /** The daemon's stderr, chunk by chunk. */
  readonly stderr: string[] = [];
  private exitedText: string | undefined;
  private waiters: Waiter[] = [];

  constructor(child: LoggingProcess) {
    let buffer = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const e = parseLine(line);
        if (e !== undefined) this.add(e);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => this.stderr.push(s));
    child.once('exit', (code, signal) => {
      const stderr = this.stderr.join('').trim();
      this.exitedText = `the daemon exited (${signal ?? `code ${code}`})${stderr === '' ? '' : `: ${stderr}`}`;
      // A daemon that dies fails every wait at once, instead of at each wait's timeout.
      for (const w of this.waiters.splice(0)) w.reject(new Error(this.exitedText));
    });
  }

  get length(): number {
    return this.events.length;
  }

  /**
   * Resolves with the first event from index `since` on (already seen or still to come) that matches; rejects after timeoutMs,
   * or as soon as the daemon exits. `what` names the awaited event in the timeout's message.
   */
  waitFor(match: (e: LogEvent) => boolean, timeoutMs = 5000, since = 0, what = 'matching event'): Promise<LogEvent> {
    const seen = this.events.slice(since).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.exitedText !== undefined) return Promise.reject(new Error(this.exitedText));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`the daemon logged no ${what} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** The first event from index `since` on whose name is one of names. */
  next(names: readonly string[], since: number, timeoutMs: number): Promise<LogEvent> {
    return this.waitFor((e) => e.event !== undefined && names.includes(e.event), timeoutMs, since, names.join(' or '));
  }

  /** The last event from index `since` on that matches, with its arrival time. */
  last(match: (e: LogEvent) => boolean, since = 0): { event: LogEvent; atMs: number } | undefined {
    for (let i = this.events.length - 1; i >= since; i--) {
      const event = this.events[i];
      if (event !== undefined && match(event)) return { event, atMs: this.arrivedMs[i] ?? 0 };
    }
    return undefined;
  }

  private add(e: LogEvent): void {
    this.events.push(e);
    this.arrivedMs.push(performance.now());
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(e)) return true;
      w.resolve(e);
      return false;
    });
  }
}

function parseLine(line: string): LogEvent | undefined {
  try {
    const e: unknown = JSON.parse(line);
    return isLogEvent(e) ? e : undefined;
  } catch {
    return undefined; // not a log line
  }
}
