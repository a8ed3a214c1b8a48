// The metrics endpoint over a real unix socket and a real loopback port: GET and HEAD of /metrics, 404 elsewhere, 405 for other methods, the socket's mode, a stale socket replaced, a live one or a plain file never touched.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { OperatorError } from '../../src/errors.ts';
import { isLoopback, openMetricsEndpoint, parseMetricsListen } from '../../src/server/metrics-endpoint.ts';
import type { MetricsListen } from '../../src/server/metrics-endpoint.ts';
import { parseAddress } from '../../src/protocol/address.ts';

const dir = mkdtempSync(join(tmpdir(), 'sesame-metrics-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Reply { readonly status: number; readonly headers: Record<string, string | string[] | undefined>; readonly body: string }

function ask(target: { socketPath: string } | { host: string; port: number }, method: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const unix = (name: string): MetricsListen => {
  const l = parseMetricsListen(`unix:${name}`, dir);
  assert.ok(typeof l !== 'string');
  return l;
};

test('listen forms and loopback', () => {
  assert.deepEqual(parseMetricsListen('unix:m.sock', '/etc/sesame'), { kind: 'unix', path: '/etc/sesame/m.sock', text: 'unix:/etc/sesame/m.sock' });
  const v6 = parseMetricsListen('[0:0::1]:80', '/');
  assert.ok(typeof v6 !== 'string' && v6.kind === 'tcp' && v6.text === '[::1]:80' && v6.port === 80);
  for (const a of ['127.0.0.1', '127.255.0.9', '::1']) assert.equal(isLoopback(parseAddress(a) ?? assert.fail(a)), true, a);
  for (const a of ['0.0.0.0', '::', '10.0.0.1', '::2', '128.0.0.1', 'fe80::1']) assert.equal(isLoopback(parseAddress(a) ?? assert.fail(a)), false, a);
});

test('GET and HEAD of /metrics answer the page; other paths 404; other methods 405; the socket is 0660', async () => {
  let scrapes = 0;
  const listen = unix('a.sock');
  const endpoint = await openMetricsEndpoint(listen, async () => { scrapes++; return 'm 1\n'; }, () => {});
  try {
    const at = { socketPath: join(dir, 'a.sock') };
    assert.equal(statSync(at.socketPath).mode & 0o777, 0o660);
    const get = await ask(at, 'GET', '/metrics');
    assert.equal(get.status, 200);
    assert.equal(get.body, 'm 1\n');
    assert.equal(get.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal((await ask(at, 'GET', '/metrics?x=1')).status, 200, 'a query string is ignored');
    const head = await ask(at, 'HEAD', '/metrics');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], '4');
    for (const path of ['/', '/metrics/', '/Metrics', '/metricsx', '//metrics']) assert.equal((await ask(at, 'GET', path)).status, 404, path);
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await ask(at, method, '/metrics');
      assert.equal(r.status, 405, method);
      assert.equal(r.headers['allow'], 'GET, HEAD');
    }
    assert.equal(scrapes, 3, 'only GET and HEAD of /metrics make a page');
  } finally {
    await endpoint.close();
  }
});

test('a page that fails is a 500, reported, and the endpoint keeps serving', async () => {
  const errors: unknown[] = [];
  let fail = true;
  const endpoint = await openMetricsEndpoint(unix('b.sock'), async () => { if (fail) throw new Error('boom'); return 'ok 1\n'; }, (e) => errors.push(e));
  try {
    const at = { socketPath: join(dir, 'b.sock') };
    assert.equal((await ask(at, 'GET', '/metrics')).status, 500);
    assert.equal(errors.length, 1);
    fail = false;
    assert.equal((await ask(at, 'GET', '/metrics')).body, 'ok 1\n');
  } finally {
    await endpoint.close();
  }
});

test('a loopback TCP address serves the same; a port in use is an operator error (exit 8) naming the address', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const address = taken.address();
  assert.ok(address !== null && typeof address === 'object');
  try {
    const listen = parseMetricsListen(`127.0.0.1:${address.port}`, '/');
    assert.ok(typeof listen !== 'string');
    await assert.rejects(openMetricsEndpoint(listen, async () => '', () => {}), (err: unknown) => err instanceof OperatorError && err.exitCode === 8 && err.message === `cannot open the metrics endpoint 127.0.0.1:${address.port}: EADDRINUSE`);
  } finally {
    await new Promise((r) => taken.close(r));
  }
  // The port is free now: serve on it.
  const listen = parseMetricsListen(`127.0.0.1:${address.port}`, '/');
  assert.ok(typeof listen !== 'string');
  const endpoint = await openMetricsEndpoint(listen, async () => 'tcp 1\n', () => {});
  try {
    assert.equal((await ask({ host: '127.0.0.1', port: address.port }, 'GET', '/metrics')).body, 'tcp 1\n');
  } finally {
    await endpoint.close();
  }
});

test('a socket left by a dead daemon is replaced; a live socket and a plain file are refused and left alone', async () => {
  // A process that listens on a socket and is SIGKILLed leaves the socket file behind, as a killed daemon does.
  const stalePath = join(dir, 'stale.sock');
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stalePath)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(statSync(stalePath).isSocket(), true, 'the killed process left its socket');
  const live = await openMetricsEndpoint(unix('live.sock'), async () => '', () => {});
  try {
    await assert.rejects(openMetricsEndpoint(unix('live.sock'), async () => '', () => {}), /unix:.*live\.sock: another process is listening on it/);
    assert.equal((await ask({ socketPath: join(dir, 'live.sock') }, 'GET', '/metrics')).status, 200, 'the live endpoint still serves');
    writeFileSync(join(dir, 'file.sock'), 'operator data');
    await assert.rejects(openMetricsEndpoint(unix('file.sock'), async () => '', () => {}), /the path exists and is not a socket \(not replacing it\)/);
    assert.equal(statSync(join(dir, 'file.sock')).isFile(), true);
  } finally {
    await live.close();
  }
  const again = await openMetricsEndpoint(unix('stale.sock'), async () => 'again 1\n', () => {});
  try {
    assert.equal((await ask({ socketPath: stalePath }, 'GET', '/metrics')).body, 'again 1\n');
  } finally {
    await again.close();
  }
  assert.equal(statSync(stalePath, { throwIfNoEntry: false }), undefined, 'closing removes the socket file');
});

test('connections are bounded: beyond maxConnections a connection is closed at once; a request not sent whole in time is dropped', { timeout: 20_000 }, async () => {
  const endpoint = await openMetricsEndpoint(unix('c.sock'), async () => 'c 1\n', () => {}, { maxConnections: 2, requestTimeoutMs: 300 });
  const path = join(dir, 'c.sock');
  /** Connects and resolves with how long after connecting the listener closed the connection. */
  const connection = (): { socket: Socket; closedAfterMs: Promise<number> } => {
    const socket = connect(path);
    socket.on('error', () => {});
    socket.resume(); // read (and discard) what comes, so the listener closing its end is seen
    const t = Date.now();
    return { socket, closedAfterMs: new Promise((r) => socket.once('close', () => r(Date.now() - t))) };
  };
  try {
    const held = [connection(), connection()];
    await Promise.all(held.map((c) => new Promise((r) => c.socket.once('connect', r))));
    for (const c of held) c.socket.write('GET /metr'); // half a request
    const third = connection();
    assert.ok(await third.closedAfterMs < 2000, 'the third connection is closed by the listener');
    for (const c of held) {
      const ms = await c.closedAfterMs;
      assert.ok(ms >= 250 && ms < 10_000, `a slow request is dropped after the timeout (took ${ms} ms)`);
    }
    assert.equal((await ask({ socketPath: path }, 'GET', '/metrics')).body, 'c 1\n', 'and the endpoint serves again');
  } finally {
    await endpoint.close();
  }
});
