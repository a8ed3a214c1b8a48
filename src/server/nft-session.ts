// One long-lived `nft -i` process: nft lines in on stdin, each followed by an acknowledgement marker; errors and markers come back in order on stderr. Trusts its callers' lines (built by nftables.ts from typed values).
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { NFT } from '../limits.ts';

/** Deliberately invalid syntax: nft answers on stderr with an error that echoes this line, after everything it printed for the line before. */
const ACK_PREFIX = 'sesame-ack-';
/** libedit would read ~/.editrc and write every command (grant addresses) to ~/.nft.history; nothing can exist under /dev/null. */
export const NFT_ENV = { ...process.env, HOME: '/dev/null' };

interface Request {
  readonly line: string;
  /** Retried alone after its batch failed, so one bad request cannot fail the others. */
  readonly solo: boolean;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

interface Batch {
  readonly id: number;
  readonly requests: readonly Request[];
  readonly timer: NodeJS.Timeout;
}

type NftChild = ChildProcessByStdio<Writable, null, Readable>;

/** One `nft -i` process: lines in on stdin, each followed by an ack marker; errors and markers arrive in order on stderr. */
export class NftInteractive {
  #child: NftChild | undefined;
  /** The next process, started ahead of a recycle because nft takes tens of ms to start. */
  #spare: NftChild | undefined;
  #queue: Request[] = [];
  #inFlight: Batch | undefined;
  #partial = '';
  #diagnostics: string[] = [];
  #nextId = 1;
  #sent = 0;
  #closed = false;
  #idle: (() => void)[] = [];
  readonly #nftPath: string;
  readonly #timeoutMs: number;

  constructor(nftPath: string, timeoutMs: number) {
    this.#nftPath = nftPath;
    this.#timeoutMs = timeoutMs;
  }

  run(line: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('nftables firewall is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ line, solo: false, resolve, reject });
      this.#pump();
    });
  }

  /** Starts nft now so the first grant does not wait for it. */
  warm(): void {
    if (this.#child === undefined && !this.#closed) this.#promote();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#inFlight !== undefined || this.#queue.length > 0) await new Promise<void>((r) => this.#idle.push(r));
    const children = [this.#child, this.#spare].filter((c): c is NftChild => c !== undefined && c.exitCode === null && c.signalCode === null);
    this.#child = this.#spare = undefined;
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      const timer = setTimeout(() => resolve(void child.kill('SIGKILL')), this.#timeoutMs);
      child.once('close', () => resolve(clearTimeout(timer)));
      child.stdin.end(); // nft -i exits at end of input
    })));
  }

  #pump(): void {
    if (this.#inFlight !== undefined) return;
    if (this.#queue.length === 0) {
      for (const r of this.#idle.splice(0)) r();
      return;
    }
    const child = this.#child ?? this.#promote();
    let count = 1;
    if (this.#queue[0]?.solo === false) {
      while (count < NFT.maxBatchRequests && this.#queue[count]?.solo === false) count++;
    }
    const requests = this.#queue.splice(0, count);
    const id = this.#nextId++;
    const timer = setTimeout(() => this.#lost(child, `no acknowledgement within ${this.#timeoutMs} ms`), this.#timeoutMs);
    this.#inFlight = { id, requests, timer };
    this.#sent += requests.length;
    // Identical requests (a source re-knocking for the same port and time) are one change: send it once.
    child.stdin.write(`${[...new Set(requests.map((r) => r.line))].join('; ')}\n${ACK_PREFIX}${id}\n`);
  }

  #spawn(): NftChild {
    const child = spawn(this.#nftPath, ['-i'], { stdio: ['pipe', 'ignore', 'pipe'], env: NFT_ENV });
    child.stdin.on('error', () => {}); // EPIPE after a crash; the exit handler reports it.
    child.on('error', (e) => this.#lost(child, e.message));
    child.on('exit', (code, signal) => this.#lost(child, signal ?? `exit code ${code}`));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (child !== this.#child) return;
      const lines = (this.#partial + chunk).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const line of lines) this.#onLine(line);
    });
    return child;
  }

  /** Makes the spare (if still alive) or a fresh process the current one. */
  #promote(): NftChild {
    const spare = this.#spare;
    this.#spare = undefined;
    const child = spare !== undefined && spare.exitCode === null && spare.signalCode === null ? spare : this.#spawn();
    this.#child = child;
    this.#partial = '';
    this.#diagnostics = [];
    this.#sent = 0;
    return child;
  }

  #onLine(line: string): void {
    const batch = this.#inFlight;
    if (batch !== undefined && line === `${ACK_PREFIX}${batch.id}`) {
      const diagnostics = this.#diagnostics;
      this.#diagnostics = [];
      if (diagnostics.at(-1)?.startsWith('Error:') === true) diagnostics.pop(); // the marker's own syntax error
      this.#settle(batch, diagnostics);
    } else if (!/^[\s^~]*$/.test(line) && this.#diagnostics.length < NFT.maxDiagnosticLines) {
      this.#diagnostics.push(line); // caret lines under an echoed command carry nothing
    }
  }

  #settle(batch: Batch, diagnostics: readonly string[]): void {
    clearTimeout(batch.timer);
    this.#inFlight = undefined;
    const errors = [...new Set(diagnostics.filter((l) => l.startsWith('Error:')))];
    if (errors.length === 0) {
      for (const r of batch.requests) r.resolve();
    } else if (batch.requests.length > 1) {
      // The transaction was rolled back whole; find the culprit by retrying each request alone.
      this.#queue.unshift(...batch.requests.map((r) => ({ ...r, solo: true })));
    } else {
      for (const r of batch.requests) r.reject(new Error(`nft refused "${r.line.slice(0, 200)}": ${errors.join('; ')}`));
    }
    if (this.#sent >= NFT.recycleAfterRequests - NFT.spareLeadRequests && this.#spare === undefined && !this.#closed) this.#spare = this.#spawn();
    if (this.#sent >= NFT.recycleAfterRequests) {
      // It exits at end of input, and its exit is no longer ours to handle. (Measured: the exit of an nft that has
      // run many transactions stalls the next one in the kernel by ~20 ms, once per recycle.)
      this.#child?.stdin.end();
      this.#child = undefined;
      if (!this.#closed) this.#promote();
    }
    this.#pump();
  }

  #lost(child: NftChild, why: string): void {
    if (child !== this.#child) return;
    this.#child = undefined;
    child.kill('SIGKILL');
    const batch = this.#inFlight;
    this.#inFlight = undefined;
    if (batch !== undefined) {
      clearTimeout(batch.timer);
      for (const r of batch.requests) r.reject(new Error(`nft failed (${why}); the change may not have been applied`));
    }
    this.#pump(); // requests still queued go to a fresh process
  }
}

