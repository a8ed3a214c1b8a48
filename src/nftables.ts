// The nftables firewall backend: one `inet sesame` table whose set elements (with kernel-enforced timeouts) are the grants, fed through one long-lived `nft -i`. Trusts its typed Address/Access/ttl inputs (re-checked on entry) and reads nft output only for acknowledgements and `nft -j` listings.
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { isPort, isProto } from './access.ts';
import { addressFromBytes } from './address.ts';
import type { Firewall, Grant, GrantTarget } from './firewall.ts';
import type { Access } from './access.ts';
import { CEILING } from './limits.ts';

export interface NftablesOptions {
  /** Name of the `inet` table sesame owns; lowercase letters, digits, underscore. */
  readonly table?: string;
  readonly nftPath?: string;
  /** A command that is not acknowledged in this time kills nft and fails. */
  readonly commandTimeoutMs?: number;
}

export interface AllowedEntry {
  readonly address: string;
  readonly proto: string;
  readonly port: number;
  /** Whole seconds until the kernel drops the element (Infinity if it has no timeout). */
  readonly expiresSeconds: number;
}

const DEFAULT_TABLE = 'sesame';
const TABLE_NAME = /^[a-z][a-z0-9_]{0,31}$/;
const DEFAULT_TIMEOUT_MS = 5_000;
/** nft's interactive mode keeps every line in memory (libedit history) and slows as it grows; a fresh process is cheap. */
const RECYCLE_AFTER_REQUESTS = 1_000;
const SPARE_LEAD_REQUESTS = 100;
/** Concurrent requests sent as one transaction; bounds the line length. */
const MAX_BATCH_REQUESTS = 64;
/** Deliberately invalid syntax: nft answers on stderr with an error that echoes this line, after everything it printed for the line before. */
const ACK_PREFIX = 'sesame-ack-';
/** libedit would read ~/.editrc and write every command (grant addresses) to ~/.nft.history; nothing can exist under /dev/null. */
const NFT_ENV = { ...process.env, HOME: '/dev/null' };

function checkTable(name: string): string {
  if (!TABLE_NAME.test(name)) throw new Error(`nftables table name "${name}" must match ${TABLE_NAME}`);
  return name;
}

function accessKey({ proto, port }: Access): string {
  if (!isProto(proto) || !isPort(port)) throw new Error(`invalid access ${String(proto)}/${String(port)}`);
  return `${proto} . ${port}`;
}

/** The set and element text for one target, rebuilt from its bytes so no text but a canonical IP reaches nft. */
function elementOf(t: GrantTarget): { readonly set: 'allow4' | 'allow6'; readonly key: string } {
  const address = addressFromBytes(t.address.bytes);
  if (address === undefined || address.family !== t.address.family) throw new Error('grant address is not a 4- or 16-byte IP address');
  return { set: address.family === 4 ? 'allow4' : 'allow6', key: `${address.text} . ${accessKey(t.access)}` };
}

function checkTtl(ttlSeconds: number): number {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > CEILING.durationSeconds) {
    throw new Error(`ttlSeconds must be an integer in 1..${CEILING.durationSeconds}, got ${ttlSeconds}`);
  }
  return ttlSeconds;
}

/**
 * `add` then `delete` makes the element absent without failing if it was never there, and a final `add ... timeout`
 * sets a fresh timeout: nft 1.0.6 has no `destroy element`, and `add` alone may not refresh an existing element's timeout.
 * One line is one transaction, so the target is never closed in between.
 */
function setCommands(table: string, entries: ReadonlyMap<string, { set: string; ttlSeconds?: number }>): string {
  const out: string[] = [];
  for (const set of ['allow4', 'allow6']) {
    const keys = [...entries].filter(([, e]) => e.set === set);
    if (keys.length === 0) continue;
    const plain = keys.map(([key]) => key).join(', ');
    out.push(`add element inet ${table} ${set} { ${plain} }`, `delete element inet ${table} ${set} { ${plain} }`);
    const timed = keys.filter(([, e]) => e.ttlSeconds !== undefined).map(([key, e]) => `${key} timeout ${e.ttlSeconds}s`);
    if (timed.length > 0) out.push(`add element inet ${table} ${set} { ${timed.join(', ')} }`);
  }
  return out.join('; ');
}

/** One nft line (one transaction) that opens every grant for its ttl; '' for no grants. */
export function grantCommand(table: string, grants: readonly Grant[]): string {
  const entries = new Map<string, { set: string; ttlSeconds: number }>();
  for (const g of grants) {
    const { set, key } = elementOf(g);
    entries.delete(key); // the last request for a target wins, as if applied one after another
    entries.set(key, { set, ttlSeconds: checkTtl(g.ttlSeconds) });
  }
  return setCommands(checkTable(table), entries);
}

/** One nft line that closes every target, open or not; '' for no targets. */
export function revokeCommand(table: string, targets: readonly GrantTarget[]): string {
  return setCommands(checkTable(table), new Map(targets.map((t) => { const { set, key } = elementOf(t); return [key, { set }] as const; })));
}

/** The whole table except allow4/allow6 contents, declared idempotently so a restart keeps live grants. */
export function setupScript(table: string, protectedPorts: readonly Access[]): string {
  const t = `inet ${checkTable(table)}`;
  const ports = [...new Set(protectedPorts.map(accessKey))];
  return [
    `add table ${t}`,
    `add set ${t} protected { type inet_proto . inet_service; }`,
    `add set ${t} allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }`,
    `add set ${t} allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }`,
    `add chain ${t} input { type filter hook input priority -10; policy accept; }`,
    `flush chain ${t} input`,
    `add rule ${t} input ct state established,related accept`,
    `add rule ${t} input ip saddr . meta l4proto . th dport @allow4 accept`,
    `add rule ${t} input ip6 saddr . meta l4proto . th dport @allow6 accept`,
    `add rule ${t} input meta l4proto . th dport @protected drop`,
    `flush set ${t} protected`,
    ...(ports.length > 0 ? [`add element ${t} protected { ${ports.join(', ')} }`] : []),
    '',
  ].join('\n');
}

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
class NftInteractive {
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
      while (count < MAX_BATCH_REQUESTS && this.#queue[count]?.solo === false) count++;
    }
    const requests = this.#queue.splice(0, count);
    const id = this.#nextId++;
    const timer = setTimeout(() => this.#lost(child, `no acknowledgement within ${this.#timeoutMs} ms`), this.#timeoutMs);
    this.#inFlight = { id, requests, timer };
    this.#sent += requests.length;
    child.stdin.write(`${requests.map((r) => r.line).join('; ')}\n${ACK_PREFIX}${id}\n`);
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
    } else if (!/^[\s^~]*$/.test(line) && this.#diagnostics.length < 100) {
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
    if (this.#sent >= RECYCLE_AFTER_REQUESTS - SPARE_LEAD_REQUESTS && this.#spare === undefined && !this.#closed) this.#spare = this.#spawn();
    if (this.#sent >= RECYCLE_AFTER_REQUESTS) {
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

/** The Firewall for nftables. Each instance owns one long-lived nft process, started on first use. */
export class NftablesFirewall implements Firewall {
  readonly table: string;
  readonly #nftPath: string;
  readonly #nft: NftInteractive;

  constructor(options: NftablesOptions = {}) {
    this.table = checkTable(options.table ?? DEFAULT_TABLE);
    this.#nftPath = options.nftPath ?? 'nft';
    this.#nft = new NftInteractive(this.#nftPath, options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS);
  }

  async setup(protectedPorts: readonly Access[]): Promise<void> {
    await runNft(this.#nftPath, ['-f', '-'], setupScript(this.table, protectedPorts));
    this.#nft.warm();
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    const line = grantCommand(this.table, grants);
    if (line !== '') await this.#nft.run(line);
  }

  async revoke(targets: readonly GrantTarget[]): Promise<void> {
    const line = revokeCommand(this.table, targets);
    if (line !== '') await this.#nft.run(line);
  }

  close(): Promise<void> {
    return this.#nft.close();
  }
}

interface NftOutput { readonly stdout: string; readonly stderr: string }

/** One nft invocation with an argument array (never a shell); rejects with nft's message on a non-zero exit. */
function runNft(nftPath: string, args: readonly string[], input?: string): Promise<NftOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(nftPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: NFT_ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`nft ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** Deletes sesame's table and every grant in it; succeeds if it is already gone (`sesame server --cleanup`). */
export async function cleanup(table: string = DEFAULT_TABLE, nftPath = 'nft'): Promise<void> {
  const t = `inet ${checkTable(table)}`;
  await runNft(nftPath, ['-f', '-'], `add table ${t}\ndelete table ${t}\n`);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const PROTO_NUMBERS: Readonly<Record<string, string>> = { '6': 'tcp', '17': 'udp' };

function entryFrom(raw: unknown): AllowedEntry | undefined {
  // Elements with a timeout are wrapped as {elem: {val, timeout, expires}}; plain ones are the value itself.
  const wrapped = isRecord(raw) && isRecord(raw['elem']) ? raw['elem'] : undefined;
  const val = wrapped === undefined ? raw : wrapped['val'];
  const parts = isRecord(val) ? val['concat'] : undefined;
  if (!Array.isArray(parts) || parts.length !== 3) return undefined;
  const [address, proto, port]: unknown[] = parts;
  const expires = wrapped?.['expires'];
  if (typeof address !== 'string' || (typeof proto !== 'string' && typeof proto !== 'number')) return undefined;
  const portNumber = Number(port);
  if (!isPort(portNumber)) return undefined;
  return { address, proto: PROTO_NUMBERS[String(proto)] ?? String(proto), port: portNumber, expiresSeconds: typeof expires === 'number' ? expires : Infinity };
}

/** The live grants in sesame's table, read with `nft -j` (for tests and a status view). */
export async function listAllowed(table: string = DEFAULT_TABLE, nftPath = 'nft'): Promise<AllowedEntry[]> {
  const out: AllowedEntry[] = [];
  for (const set of ['allow4', 'allow6']) {
    const { stdout } = await runNft(nftPath, ['-j', 'list', 'set', 'inet', checkTable(table), set]);
    const doc: unknown = JSON.parse(stdout);
    const items = isRecord(doc) && Array.isArray(doc['nftables']) ? doc['nftables'] : [];
    for (const item of items) {
      const s = isRecord(item) && isRecord(item['set']) ? item['set'] : undefined;
      const elems = s !== undefined && Array.isArray(s['elem']) ? s['elem'] : [];
      for (const e of elems) {
        const entry = entryFrom(e);
        if (entry === undefined) throw new Error(`unexpected element in nft -j output: ${JSON.stringify(e)}`);
        out.push(entry);
      }
    }
  }
  return out;
}
