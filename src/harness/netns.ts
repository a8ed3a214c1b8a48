// Throwaway network namespaces (used by `sesame demo`): create a pair joined by one veth, run programs inside (a TCP service, a TCP probe, a UDP sender), delete them with everything in them. Trusts its caller's names and addresses; refuses any namespace not named sesame-*, and never creates an interface in the host namespace.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess, ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface ExecResult {
  /** Exit code; null if killed (timeout) or the program could not be started. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the program could not be started at all (ENOENT: not installed). */
  readonly spawnError?: string;
}

export interface Side {
  readonly ns: string;
  readonly dev: string;
  /** Address with prefix length, e.g. 10.77.0.1/24. */
  readonly cidr: string;
}

const OWNED = /^sesame-[a-z0-9-]{1,40}$/;

/** Every program started here and still running, so an interrupted caller can end them all synchronously. */
const live = new Set<ChildProcess>();

function track<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** SIGKILLs every program started here that still runs; synchronous, for signal and exit handlers. */
export function killStarted(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** SIGKILLs every program started here and resolves once all have exited (or after timeoutMs). */
export async function stopStarted(timeoutMs = 2_000): Promise<void> {
  const exits = [...live].map((child) => new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  }));
  await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
}

function owned(ns: string): string {
  if (!OWNED.test(ns)) throw new Error(`refusing to touch network namespace "${ns}": not a sesame-* namespace`);
  return ns;
}

/** Runs a program with an argument array (no shell); never rejects, whatever the exit code. */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 20_000, maxBuffer: 8 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr });
      const code = typeof err.code === 'number' ? err.code : null;
      const spawnError = typeof err.code === 'string' ? err.code : undefined;
      resolve({ code, stdout, stderr: stderr === '' && code === null ? err.message : stderr, ...(spawnError === undefined ? {} : { spawnError }) });
    });
    track(child);
  });
}

/** Runs argv inside ns: `ip netns exec` enters the namespace and then execs argv, so the pid is argv's own. */
export function runIn(ns: string, argv: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', owned(ns), ...argv], opts);
}

/** Starts a long-lived program inside ns with stdout and stderr piped. */
export function spawnIn(ns: string, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcessByStdio<null, Readable, Readable> {
  return track(spawn('ip', ['netns', 'exec', owned(ns), ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env }));
}

/** Names of the existing namespaces that start with prefix. */
export function listNamespaces(prefix: string): string[] {
  let out = '';
  try {
    out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  // Lines look like "name" or "name (id: 3)".
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}

/**
 * Kills whatever still runs in ns, then deletes it; synchronous, so a signal or exit handler can call it.
 * Deleting the namespace also deletes its veth end (and so the pair) and its nftables ruleset.
 */
export function removeNamespace(ns: string): void {
  owned(ns);
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  try {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

async function must(argv: readonly string[]): Promise<void> {
  const [cmd = 'ip', ...args] = argv;
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`\`${argv.join(' ')}\` failed: ${r.stderr.trim() || `exit ${r.code}`}`);
}

/**
 * Creates both namespaces (after removing stale ones of the same names) and joins them with a veth pair
 * born inside the server namespace with its peer created directly in the client one: no step puts an
 * interface in the host namespace. On any failure both are removed again and the error names the step.
 */
export async function createPair(server: Side, client: Side): Promise<void> {
  for (const s of [server, client]) removeNamespace(s.ns);
  try {
    for (const s of [server, client]) await must(['ip', 'netns', 'add', owned(s.ns)]);
    await must(['ip', '-n', server.ns, 'link', 'add', server.dev, 'type', 'veth', 'peer', 'name', client.dev, 'netns', client.ns]);
    for (const s of [server, client]) {
      await must(['ip', '-n', s.ns, 'addr', 'add', s.cidr, 'dev', s.dev]);
      await must(['ip', '-n', s.ns, 'link', 'set', 'lo', 'up']);
      await must(['ip', '-n', s.ns, 'link', 'set', s.dev, 'up']);
    }
  } catch (err) {
    for (const s of [server, client]) removeNamespace(s.ns);
    throw err;
  }
}

/** Small node programs run inside a namespace; their arguments arrive as process.argv[1..]. */
const PROGRAM = {
  service: `const net = require('node:net'); const [port, banner] = process.argv.slice(1);
net.createServer((c) => { c.on('error', () => {}); c.end(banner + '\\r\\n'); }).listen(Number(port), '0.0.0.0', () => console.log('listening'));`,
  probe: `const net = require('node:net'); const [host, port, ms] = process.argv.slice(1); let got = '', connected = false;
const s = net.connect({ host, port: Number(port) });
setTimeout(() => { console.log(connected ? 'open' : 'timeout'); process.exit(0); }, Number(ms));
s.on('connect', () => { connected = true; }); s.on('data', (d) => { got += d; });
s.on('end', () => { console.log('open'); process.stdout.write(got); process.exit(0); });
s.on('error', (e) => { console.log('error ' + (e.code || e.message)); process.exit(0); });`,
  udp: `const dgram = require('node:dgram'); const [host, port, hex] = process.argv.slice(1); const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.send(Buffer.from(hex, 'hex'), Number(port), host, (e) => { s.close(); if (e) { console.error(e.message); process.exit(1); } });`,
} as const;

const failure = (what: string, r: ExecResult): Error => new Error(`${what} failed (${r.code === null ? 'killed' : `exit ${r.code}`}): ${(r.stderr || r.stdout).trim()}`);

/** Starts a TCP service on 0.0.0.0:port inside ns that sends banner and closes each connection; resolves once it listens. */
export function startBannerService(ns: string, port: number, banner: string): Promise<void> {
  const child = spawnIn(ns, [process.execPath, '-e', PROGRAM.service, String(port), banner]);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
    });
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (s.includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the TCP service exited (${code}) before listening: ${err.trim()}`)));
  });
}

export type Probe = { readonly state: 'open'; readonly banner: string } | { readonly state: 'timeout' } | { readonly state: 'error'; readonly code: string };

/** One TCP connect from inside ns: open (with what the service sent), no answer within timeoutMs, or an error such as ECONNREFUSED. */
export async function probeTcp(ns: string, host: string, port: number, timeoutMs: number): Promise<Probe> {
  const out = await runIn(ns, [process.execPath, '-e', PROGRAM.probe, host, String(port), String(timeoutMs)]);
  if (out.code !== 0) throw failure('the TCP probe', out);
  const [state = '', ...rest] = out.stdout.split('\n');
  if (state === 'open') return { state, banner: rest.join('\n').trim() };
  if (state === 'timeout') return { state };
  return { state: 'error', code: state.replace(/^error /, '') };
}

/** Sends bytes as one UDP datagram from inside ns. */
export async function sendUdp(ns: string, host: string, port: number, bytes: Uint8Array): Promise<void> {
  const out = await runIn(ns, [process.execPath, '-e', PROGRAM.udp, host, String(port), Buffer.from(bytes).toString('hex')]);
  if (out.code !== 0) throw failure('the UDP sender', out);
}
