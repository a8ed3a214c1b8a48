// Waiting for the opened port (wait.ts) with real sockets on loopback only: a port that opens late (a stopped listener with a full accept queue drops SYNs like a closed firewall would), a refused port, a timeout; and the explanation of a failed wait.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import type { Socket } from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WAIT } from '../../src/limits.ts';
import type { Target } from '../../src/client/send.ts';
import { explainNotOpened, waitForPort } from '../../src/client/wait.ts';
import type { WaitContext } from '../../src/client/wait.ts';

/** No test here waits forever: a hang is a failure. */
const TEST_MS = 60_000;

const v4: Target = { host: 'server.test', address: '127.0.0.1', family: 4 };
const v6: Target = { host: 'server6.test', address: '::1', family: 6 };

const cleanups: (() => void)[] = [];
after(() => { for (const c of cleanups.splice(0)) c(); });

/** A loopback port with nothing listening on it (bound, read, released). */
async function closedPort(host: string): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen({ host, port: 0 }, resolve));
  const address = srv.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise((resolve) => srv.close(resolve));
  return address.port;
}

const ECHO = `
const net = require('node:net');
const srv = net.createServer((c) => { c.on('error', () => {}); c.pipe(c); });
srv.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => console.log(srv.address().port));`;

/** Accept queue length and its limit for the listener on port (ss: Recv-Q and Send-Q of a LISTEN socket). */
function acceptQueue(port: number): { queued: number; limit: number } {
  const line = execFileSync('ss', ['-Hltn', 'sport', '=', `:${port}`], { encoding: 'utf8' }).trim().split('\n')[0] ?? '';
  const [, queued, limit] = line.split(/\s+/);
  return { queued: Number(queued), limit: Number(limit) };
}

/**
 * An echo listener on 127.0.0.1 that is SIGSTOPped with its accept queue full: the kernel then drops new SYNs,
 * so a connect neither succeeds nor is refused (what a knock-protected port does), until resume() lets it accept.
 */
async function stalledListener(): Promise<{ port: number; resume(): void; stop(): void }> {
  const child = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: Socket[] = [];
  const stop = (): void => {
    for (const s of fillers) s.destroy();
    child.kill('SIGKILL');
  };
  cleanups.push(stop);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding('utf8').once('data', (s: string) => resolve(Number(s.trim())));
    child.once('exit', (code) => reject(new Error(`the listener exited (${code}) before listening`)));
  });
  assert.ok(child.pid !== undefined && child.kill('SIGSTOP'));
  // Connections the kernel completes on its own, until the queue is over its limit (Linux takes limit + 1).
  while (acceptQueue(port).queued <= acceptQueue(port).limit) {
    assert.ok(fillers.length < 20, `the accept queue of port ${port} never filled: ${JSON.stringify(acceptQueue(port))}`);
    const s = connect({ host: '127.0.0.1', port });
    fillers.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
  }
  return { port, resume: () => void child.kill('SIGCONT'), stop };
}

/** Sends a line over the socket and resolves with what comes back. */
function echo(s: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    s.setEncoding('utf8').on('data', (d: string) => {
      got += d;
      if (got.length >= text.length) resolve(got);
    });
    s.once('error', reject);
    s.write(text);
  });
}

test('a port that opens only after a re-knock: reknock is called after firstReknockMs, then the wait hands over the connected socket', { timeout: TEST_MS }, async () => {
  const listener = await stalledListener();
  const reknockAtMs: number[] = [];
  const started = performance.now();
  const outcome = await waitForPort(v4, listener.port, 30_000, async () => {
    reknockAtMs.push(performance.now() - started);
    listener.resume(); // the "fresh knock" opens the port
  });
  assert.ok(outcome.ok, `expected the port to open, got ${JSON.stringify(outcome)}`);
  assert.ok(reknockAtMs.length >= 1, 'reknock was called');
  assert.ok((reknockAtMs[0] ?? 0) >= WAIT.firstReknockMs - 5, `first reknock at ${reknockAtMs[0]} ms, before ${WAIT.firstReknockMs} ms`);
  assert.ok(outcome.elapsedMs >= WAIT.firstReknockMs - 5);
  assert.equal(await echo(outcome.socket, 'hello through the wait\n'), 'hello through the wait\n', 'the handed-over socket is a live connection');
  outcome.socket.destroy();
  listener.stop();
});

test('a port that never opens: timeout after timeoutMs, reknock called, its failure kept as the last error, no timer left behind', { timeout: TEST_MS }, async () => {
  const listener = await stalledListener();
  let reknocks = 0;
  const timeoutMs = 2_500;
  const outcome = await waitForPort(v4, listener.port, timeoutMs, async () => {
    reknocks++;
    throw Object.assign(new Error('send ENETUNREACH'), { code: 'ENETUNREACH' });
  });
  assert.ok(!outcome.ok);
  assert.equal(outcome.why, 'timeout');
  assert.ok(outcome.elapsedMs >= timeoutMs - 5, `gave up after ${outcome.elapsedMs} ms`);
  assert.ok(reknocks >= 1, 'reknock was called');
  assert.equal(outcome.lastError, 'ENETUNREACH');
  const atFinish = reknocks;
  await sleep(WAIT.reknockEveryMs + 500);
  assert.equal(reknocks, atFinish, 'no reknock after the wait ended');
  listener.stop();
});

for (const target of [v4, v6]) {
  test(`nothing listening on ${target.address}: the wait ends at once as refused, without waiting for the timeout`, { timeout: TEST_MS }, async () => {
    const port = await closedPort(target.address);
    let reknocks = 0;
    const outcome = await waitForPort(target, port, 20_000, async () => {
      reknocks++;
    });
    assert.ok(!outcome.ok);
    assert.equal(outcome.why, 'refused');
    assert.equal(outcome.lastError, 'ECONNREFUSED');
    assert.ok(outcome.elapsedMs < 10_000, `refused after ${outcome.elapsedMs} ms`);
    const atFinish = reknocks;
    await sleep(WAIT.firstReknockMs + 500);
    assert.equal(reknocks, atFinish, 'no reknock after the wait ended');
  });
}

const context: WaitContext = { target: v4, port: 22, knockPort: 62201, knocks: 3, timeoutSeconds: 5, serverKey: '/etc/sesame/server.pub', keyIdHex: '00112233445566778899aabbccddeeff' };
const at = new Date(Date.UTC(2030, 0, 2, 3, 4, 5));

test('explainNotOpened: a refusal says the port is reachable and nothing listens', () => {
  const text = explainNotOpened({ ok: false, why: 'refused', elapsedMs: 3, lastError: 'ECONNREFUSED' }, context, at);
  assert.equal(text.split('\n').length, 1);
  assert.match(text, /^tcp\/22 on server\.test \(127\.0\.0\.1\): port reachable but nothing listening/);
  assert.match(text, /a knock is not what is missing/);
});

test('explainNotOpened: a timeout lists the likely causes with this machine\'s clock, the key file, the key id and the last connect error', () => {
  const text = explainNotOpened({ ok: false, why: 'timeout', elapsedMs: 5000, lastError: 'EHOSTUNREACH' }, context, at);
  const lines = text.split('\n');
  assert.equal(lines[0], 'tcp/22 on server.test (127.0.0.1) did not open within 5 s (3 knocks sent to UDP port 62201; the server never answers a knock).');
  assert.ok(lines.some((l) => l.includes('clock skew') && l.includes('±30 s') && l.includes('this machine says 2030-01-02 03:04:05 UTC')));
  assert.ok(lines.some((l) => l.includes('wrong server key: /etc/sesame/server.pub')));
  assert.ok(lines.some((l) => l.includes('key id 00112233445566778899aabbccddeeff')));
  assert.equal(lines.at(-1), '(last connect error: EHOSTUNREACH)');
  const one = explainNotOpened({ ok: false, why: 'timeout', elapsedMs: 5000, lastError: undefined }, { ...context, knocks: 1 }, at);
  assert.match(one, /\(1 knock sent to UDP port 62201;/);
  assert.doesNotMatch(one, /last connect error/);
});
