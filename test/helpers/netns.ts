// Network-namespace harness for end-to-end tests: a server and a client namespace on one veth, plus tiny node programs run inside them. Trusts the test code that calls it; touches only namespaces named sesame-* that it creates.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess, ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { removeNamespace as removeOwnedNamespace } from '../../src/harness/netns.ts';

export interface Topology {
  readonly server: { readonly ns: string; readonly v4: string; readonly v6: string };
  /** v4b/v6b: a second address on the same client interface, to knock or connect "from somewhere else". */
  readonly client: { readonly ns: string; readonly v4: string; readonly v6: string; readonly v4b: string; readonly v6b: string };
  destroy(): Promise<void>;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code, or null if killed by a signal (e.g. the timeout). */
  readonly code: number | null;
}

const live = new Set<string>();
let hooked = false;

/** Why the e2e tests cannot run here (for `{ skip }`), or undefined. In CI a missing requirement is an error, never a silent skip. */
export function skipReason(): string | undefined {
  const reason = missingRequirement();
  if (reason !== undefined && process.env['CI'] !== undefined && process.env['CI'] !== '') {
    throw new Error(`CI must run the namespace tests, but ${reason}`);
  }
  return reason;
}

export const requireRoot = skipReason;

function missingRequirement(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and nftables)';
  for (const [cmd, arg] of [['ip', '-V'], ['nft', '--version']] as const) {
    try {
      execFileSync(cmd, [arg], { stdio: 'ignore' });
    } catch {
      return `\`${cmd}\` is not installed`;
    }
  }
  return undefined;
}

/** Deletes a namespace and everything still running in it (src/netns.ts), and forgets it. */
function removeNamespace(ns: string): void {
  removeOwnedNamespace(ns);
  live.delete(ns);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const all = (): void => { for (const ns of [...live]) removeNamespace(ns); };
  process.on('exit', all);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => { all(); process.exit(code); });
  }
}

/** Distinct subnets per tag: 10.<a>.<b>.0/24 and fd00:5e5a:<n>::/64 from a hash of the tag. */
function subnetsFor(tag: string): { v4: string; v6: string } {
  const h = createHash('sha256').update(tag).digest();
  const a = h[0] ?? 0;
  const b = h[1] ?? 0;
  return { v4: `10.${a}.${b}`, v6: `fd00:5e5a:${((a << 8) | b).toString(16)}` };
}

export async function createTopology(tag: string): Promise<Topology> {
  if (!/^[a-z0-9]{1,12}$/.test(tag)) throw new Error(`topology tag "${tag}" must be 1-12 lowercase letters or digits`);
  const srv = `sesame-${tag}-srv`;
  const cli = `sesame-${tag}-cli`;
  const net = subnetsFor(tag);
  hookExit();
  for (const ns of [srv, cli]) removeNamespace(ns);
  for (const ns of [srv, cli]) {
    await run(['ip', 'netns', 'add', ns]);
    live.add(ns);
  }
  // The veth pair is created inside the server namespace with its peer born in the client one: it never exists on the host.
  const steps: string[][] = [
    ['ip', '-n', srv, 'link', 'add', 'veth-srv', 'type', 'veth', 'peer', 'name', 'veth-cli', 'netns', cli],
    ['ip', '-n', srv, 'addr', 'add', `${net.v4}.1/24`, 'dev', 'veth-srv'],
    ['ip', '-n', srv, 'addr', 'add', `${net.v6}::1/64`, 'dev', 'veth-srv', 'nodad'],
    ['ip', '-n', cli, 'addr', 'add', `${net.v4}.2/24`, 'dev', 'veth-cli'],
    ['ip', '-n', cli, 'addr', 'add', `${net.v4}.3/24`, 'dev', 'veth-cli'],
    ['ip', '-n', cli, 'addr', 'add', `${net.v6}::2/64`, 'dev', 'veth-cli', 'nodad'],
    // Deprecated (preferred_lft 0), so the kernel never picks it as a source unless a socket binds to it; IPv4 gets that from .3 being secondary.
    ['ip', '-n', cli, 'addr', 'add', `${net.v6}::3/64`, 'dev', 'veth-cli', 'nodad', 'preferred_lft', '0'],
  ];
  for (const ns of [srv, cli]) steps.push(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  steps.push(['ip', '-n', srv, 'link', 'set', 'veth-srv', 'up'], ['ip', '-n', cli, 'link', 'set', 'veth-cli', 'up']);
  try {
    for (const argv of steps) await run(argv);
  } catch (e) {
    removeNamespace(srv);
    removeNamespace(cli);
    throw e;
  }
  return {
    server: { ns: srv, v4: `${net.v4}.1`, v6: `${net.v6}::1` },
    client: { ns: cli, v4: `${net.v4}.2`, v6: `${net.v6}::2`, v4b: `${net.v4}.3`, v6b: `${net.v6}::3` },
    destroy: async () => { removeNamespace(srv); removeNamespace(cli); },
  };
}

async function run(argv: readonly string[]): Promise<void> {
  const [cmd = '', ...args] = argv;
  const r = await execArgv(cmd, args, {});
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

function execArgv(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number }): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ stdout, stderr: err !== null && code === null && stderr === '' ? err.message : stderr, code });
    });
    child.stdin?.on('error', () => {}); // EPIPE if the program exits without reading its input
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs argv inside a namespace (no shell) and collects its output; never rejects for a non-zero exit. */
export function execIn(ns: string, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return execArgv('ip', ['netns', 'exec', ns, ...argv], opts);
}

/** Starts argv inside a namespace with piped stdio; destroy() kills it if the caller does not. */
export function spawnIn(ns: string, argv: readonly string[]): ChildProcessByStdio<Writable, Readable, Readable> {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs a node program (given as source) inside a namespace; its arguments arrive as process.argv[1..]. */
function nodeIn(ns: string, source: string, args: readonly string[], timeoutMs: number): Promise<ExecResult> {
  return execIn(ns, [process.execPath, '-e', source, ...args], { timeoutMs });
}

const CONNECT = `
const net = require('node:net');
const [host, port, ms, from] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), ...(from ? { localAddress: from } : {}) });
s.setTimeout(Number(ms), () => process.exit(2));
s.on('connect', () => process.exit(0));
s.on('error', () => process.exit(1));`;

/** True if a TCP connection from inside ns (optionally from a given local address) is established within timeoutMs. */
export async function tcpConnect(ns: string, host: string, port: number, timeoutMs: number, fromAddress?: string): Promise<boolean> {
  const r = await nodeIn(ns, CONNECT, [host, String(port), String(timeoutMs), fromAddress ?? ''], timeoutMs + 10_000);
  return r.code === 0;
}

const UDP = `
const dgram = require('node:dgram');
const [host, port, hex, from] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const send = () => s.send(Buffer.from(hex, 'hex'), Number(port), host, (e) => { s.close(); process.exit(e ? 1 : 0); });
if (from) s.bind({ address: from, port: 0 }, send); else send();`;

/** Sends one UDP datagram from inside ns, bound to fromAddress if given; rejects if it could not be sent. */
export async function sendUdp(ns: string, host: string, port: number, payload: Uint8Array, fromAddress?: string): Promise<void> {
  const r = await nodeIn(ns, UDP, [host, String(port), Buffer.from(payload).toString('hex'), fromAddress ?? ''], 10_000);
  if (r.code !== 0) throw new Error(`sendUdp to ${host}:${port} failed: ${r.stderr.trim()}`);
}

/** Resolves with the child once it prints `line` on stdout; rejects if it exits first. */
function waitForLine(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.split('\n').includes(line)) { child.stdout?.off('data', onData); resolve(); }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before "${line}": ${err.trim()}`)));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const LISTEN = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const srv = net.createServer((c) => { c.on('error', () => {}); c.pipe(c); });
srv.listen({ host, port: Number(port), ipv6Only: host === '::' }, () => console.log('listening'));`;

/** A TCP echo server inside ns that holds every connection open. Binds exactly host: '::' is IPv6 only, so '0.0.0.0' can share the port. */
export async function startTcpListener(ns: string, host: string, port: number): Promise<{ stop(): Promise<void> }> {
  const child = spawnIn(ns, [process.execPath, '-e', LISTEN, host, String(port)]);
  await waitForLine(child, 'listening');
  return { stop: () => stopChild(child) };
}

const HOLD = `
const net = require('node:net');
const readline = require('node:readline');
const [host, port, from] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), ...(from ? { localAddress: from } : {}) });
s.on('error', () => process.exit(1));
s.on('connect', () => console.log('connected'));
let waiting;
s.on('data', () => { if (waiting) { clearTimeout(waiting); waiting = undefined; console.log('alive'); } });
readline.createInterface({ input: process.stdin }).on('line', () => {
  s.write('x');
  waiting = setTimeout(() => { waiting = undefined; console.log('dead'); }, 1500);
});`;

export interface HeldConnection {
  /** Sends one byte over the established connection and waits up to 1.5 s for the echo. */
  isAlive(): Promise<boolean>;
  close(): Promise<void>;
}

/** Opens a TCP connection from inside ns (optionally from a given local address) to an echo listener and keeps it open; rejects if it does not connect. */
export async function openHeldConnection(ns: string, host: string, port: number, fromAddress?: string): Promise<HeldConnection> {
  const child = spawnIn(ns, [process.execPath, '-e', HOLD, host, String(port), fromAddress ?? '']);
  const connected = waitForLine(child, 'connected');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  try {
    await connected;
  } finally {
    clearTimeout(timer);
  }
  let answers = '';
  const pending: ((alive: boolean) => void)[] = [];
  child.stdout.on('data', (d: Buffer) => {
    answers += d.toString();
    for (let i = answers.indexOf('\n'); i >= 0; i = answers.indexOf('\n')) {
      const line = answers.slice(0, i);
      answers = answers.slice(i + 1);
      if (line === 'alive' || line === 'dead') pending.shift()?.(line === 'alive');
    }
  });
  child.once('exit', () => { for (const p of pending.splice(0)) p(false); });
  return {
    isAlive: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve(false); return; }
      pending.push(resolve);
      child.stdin.write('ping\n');
    }),
    close: () => stopChild(child),
  };
}
