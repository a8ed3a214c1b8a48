// The demo's reader of the daemon's JSON log lines (pino), with waits on events. Trusts nothing in a line: non-JSON and non-object lines are skipped.
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

export type LogEvent = Readonly<Record<string, unknown>>;
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const field = (e: LogEvent, key: string): string => {
  const v = e[key];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : Array.isArray(v) ? v.join(',') : '?';
};

/** The daemon's JSON log lines as they arrive, and waits on them. */
export class DaemonLog {
  readonly events: { event: LogEvent; atMs: number }[] = [];
  private stderr = '';
  private exited: string | undefined;
  private waiters: (() => void)[] = [];

  constructor(child: ChildProcessByStdio<null, Readable, Readable>) {
    let buffer = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const e: unknown = JSON.parse(line);
          if (isRecord(e)) this.events.push({ event: e, atMs: performance.now() });
        } catch {
          // not a log line
        }
      }
      this.wake();
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
    });
    child.once('exit', (code, signal) => {
      this.exited = `the daemon exited (${signal ?? `code ${code}`})${this.stderr.trim() === '' ? '' : `: ${this.stderr.trim()}`}`;
      this.wake();
    });
  }

  get length(): number {
    return this.events.length;
  }

  /** The first event from index `since` on that matches one of `names`. */
  next(names: readonly string[], since: number, timeoutMs: number): Promise<{ event: LogEvent; atMs: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`the daemon logged no ${names.join(' or ')} within ${timeoutMs / 1000} s`)), timeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        if (err !== undefined) reject(err);
      };
      const check = (): void => {
        const hit = this.events.slice(since).find((e) => names.includes(field(e.event, 'event')));
        if (hit !== undefined) {
          finish();
          resolve(hit);
        } else if (this.exited !== undefined) finish(new Error(this.exited));
      };
      this.waiters.push(check);
      check();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
