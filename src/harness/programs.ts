// Tiny node programs run inside a namespace (netns.ts): a TCP service, a TCP connect, a held TCP connection, a UDP sender, an HTTP request. Trusts its caller's namespaces, addresses and ports; reads only these programs' own output.
import type { ChildProcess } from 'node:child_process';
import { execIn, spawnIn, stopChild } from './netns.ts';
import type { ExecResult } from './netns.ts';

/** The programs' sources; their arguments arrive as process.argv[1..], an empty string meaning "not given". */
const PROGRAM = {
  /** Binds exactly host ('::' is IPv6 only, so '0.0.0.0' can share the port); sends banner and closes, or without one echoes and holds. */
  service: `const net = require('node:net'); const [host, port, banner] = process.argv.slice(1);
const serve = (c) => { c.on('error', () => {}); if (banner) c.end(banner + '\\r\\n'); else c.pipe(c); };
net.createServer(serve).listen({ host, port: Number(port), ipv6Only: host === '::' }, () => console.log('listening'));`,
  /** Prints open, timeout or "error CODE", then what the service sent: with read, waits for the service to close first. */
  connect: `const net = require('node:net'); const [host, port, ms, from, read] = process.argv.slice(1); let got = '', connected = false;
const done = (state) => { process.stdout.write(state + '\\n' + got); process.exit(0); };
const s = net.connect({ host, port: Number(port), ...(from ? { localAddress: from } : {}) });
setTimeout(() => done(connected ? 'open' : 'timeout'), Number(ms));
s.on('connect', () => { connected = true; if (!read) done('open'); }); s.on('data', (d) => { got += d; });
s.on('end', () => done('open')); s.on('error', (e) => done('error ' + (e.code || e.message)));`,
  /** Connects, then for each line on stdin (a timeout in ms) sends one byte and prints alive once it is echoed, or dead. */
  hold: `const net = require('node:net'); const readline = require('node:readline'); const [host, port, from] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), ...(from ? { localAddress: from } : {}) });
s.on('error', () => process.exit(1)); s.on('connect', () => console.log('connected'));
let waiting;
s.on('data', () => { if (waiting) { clearTimeout(waiting); waiting = undefined; console.log('alive'); } });
readline.createInterface({ input: process.stdin }).on('line', (ms) => {
  s.write('x');
  waiting = setTimeout(() => { waiting = undefined; console.log('dead'); }, Number(ms));
});`,
  udp: `const dgram = require('node:dgram'); const [host, port, hex, from] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const send = () => s.send(Buffer.from(hex, 'hex'), Number(port), host, (e) => { s.close(); if (e) { console.error(e.message); process.exit(1); } });
if (from) s.bind({ address: from, port: 0 }, send); else send();`,
  /** One HTTP request; prints the status code on the first line, then the body. */
  http: `const http = require('node:http'); const [host, port, method, path] = process.argv.slice(1);
const req = http.request({ host, port: Number(port), method, path, agent: false }, (res) => { let body = ''; res.setEncoding('utf8');
res.on('data', (d) => { body += d; }); res.on('end', () => process.stdout.write(res.statusCode + '\\n' + body)); });
req.setTimeout(5000, () => req.destroy(new Error('timeout'))); req.on('error', (e) => { console.error(e.message); process.exit(1); }); req.end();`,
} as const;

/** How long a program may run beyond its own timeout before it is killed. */
const GRACE_MS = 10_000;
const HOLD_CONNECT_MS = 5_000;

function nodeIn(ns: string, source: string, args: readonly string[], timeoutMs: number): Promise<ExecResult> {
  return execIn(ns, [process.execPath, '-e', source, ...args], { timeoutMs });
}

const failure = (what: string, r: ExecResult): Error => new Error(`${what} failed (${r.code === null ? 'killed' : `exit ${r.code}`}): ${(r.stderr || r.stdout).trim()}`);

/** Resolves once the child prints `line` on stdout; rejects if it exits first. */
function waitForLine(child: ChildProcess, line: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.split('\n').includes(line)) { child.stdout?.off('data', onData); resolve(); }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before "${line}": ${err.trim()}`)));
  });
}

/**
 * A TCP service inside ns on host:port; resolves once it listens. With banner it sends that line and closes each connection;
 * without, it echoes and holds every connection open (for openHeldConnection).
 */
export async function startTcpListener(ns: string, host: string, port: number, banner = ''): Promise<{ stop(): Promise<void> }> {
  const child = spawnIn(ns, [process.execPath, '-e', PROGRAM.service, host, String(port), banner]);
  await waitForLine(child, 'listening', 'the TCP service');
  return { stop: () => stopChild(child) };
}

export type Probe = { readonly state: 'open'; readonly banner: string } | { readonly state: 'timeout' } | { readonly state: 'error'; readonly code: string };

/**
 * One TCP connect from inside ns, optionally from a given local address: open (with what the service sent; with readBanner, once it
 * closed), no answer within timeoutMs, or an error such as ECONNREFUSED. Rejects only if the probe itself could not run.
 */
export async function probeTcp(ns: string, host: string, port: number, timeoutMs: number, opts: { fromAddress?: string; readBanner?: boolean } = {}): Promise<Probe> {
  const out = await nodeIn(ns, PROGRAM.connect, [host, String(port), String(timeoutMs), opts.fromAddress ?? '', opts.readBanner === true ? '1' : ''], timeoutMs + GRACE_MS);
  if (out.code !== 0) throw failure('the TCP probe', out);
  const [state = '', ...rest] = out.stdout.split('\n');
  if (state === 'open') return { state, banner: rest.join('\n').trim() };
  if (state === 'timeout') return { state };
  return { state: 'error', code: state.replace(/^error /, '') };
}

/** True if a TCP connection from inside ns (optionally from a given local address) is established within timeoutMs. */
export async function tcpConnect(ns: string, host: string, port: number, timeoutMs: number, fromAddress?: string): Promise<boolean> {
  const probe = await probeTcp(ns, host, port, timeoutMs, fromAddress === undefined ? {} : { fromAddress });
  return probe.state === 'open';
}

/** Sends bytes as one UDP datagram from inside ns, bound to fromAddress if given; rejects if it could not be sent. */
export async function sendUdp(ns: string, host: string, port: number, payload: Uint8Array, fromAddress?: string): Promise<void> {
  const out = await nodeIn(ns, PROGRAM.udp, [host, String(port), Buffer.from(payload).toString('hex'), fromAddress ?? ''], GRACE_MS);
  if (out.code !== 0) throw failure(`sending UDP to ${host}:${port}`, out);
}

/** One HTTP request from inside ns (the metrics endpoint on the namespace's loopback); rejects if no answer came. */
export async function httpRequest(ns: string, host: string, port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const out = await nodeIn(ns, PROGRAM.http, [host, String(port), method, path], GRACE_MS);
  if (out.code !== 0) throw failure(`HTTP ${method} ${host}:${port}${path}`, out);
  const newline = out.stdout.indexOf('\n');
  return { status: Number(out.stdout.slice(0, newline)), body: out.stdout.slice(newline + 1) };
}

export interface HeldConnection {
  /** Sends one byte over the established connection and waits up to timeoutMs for the echo (generous by default: a loaded machine is slow, not closed). */
  isAlive(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Opens a TCP connection from inside ns (optionally from a given local address) to an echoing service and keeps it open; rejects if it does not connect. */
export async function openHeldConnection(ns: string, host: string, port: number, fromAddress?: string): Promise<HeldConnection> {
  const child = spawnIn(ns, [process.execPath, '-e', PROGRAM.hold, host, String(port), fromAddress ?? '']);
  const connected = waitForLine(child, 'connected', 'the held connection');
  const timer = setTimeout(() => child.kill('SIGKILL'), HOLD_CONNECT_MS);
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
    isAlive: (timeoutMs = 5_000) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) { resolve(false); return; }
      pending.push(resolve);
      child.stdin.write(`${timeoutMs}\n`);
    }),
    close: () => stopChild(child),
  };
}
