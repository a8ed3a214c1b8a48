// End to end: the real daemon in a namespace with the metrics endpoint on, real knocks and junk over UDP, /metrics scraped from inside the namespace (loopback) and over a unix socket; the grants gauge is the kernel's count.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { METRICS } from '../../src/limits.ts';
import { httpRequest, probeTcp, sendUdp, startTcpListener } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { seriesValue } from '../helpers/scrape.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;
const METRICS_PORT = 9462;
/** The grant count is read from the kernel at most once per this; wait it out before asserting a change. */
const FRESH_MS = METRICS.grantsReadMinIntervalMs + 200;

describe('metrics endpoint end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon | undefined;
  let alice: UserKeys;
  let mallory: UserKeys;
  const listeners: { stop: () => Promise<void> }[] = [];

  const knock = (user: UserKeys, server = dir.serverKeys.publicKey): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: PORT }] }, user, server, Date.now(), systemRandom);
  const send = (packet: Uint8Array): Promise<void> => sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, packet);
  const scrape = async (): Promise<string> => {
    const r = await httpRequest(topo.server.ns, '127.0.0.1', METRICS_PORT, '/metrics');
    assert.equal(r.status, 200);
    return r.body;
  };
  const value = (page: string, series: string): number | undefined => seriesValue(page, series);
  const dropped = (page: string, reason: string): number | undefined => value(page, `sesame_knocks_dropped_total{reason="${reason}"}`);
  const setConfig = (metrics: Record<string, unknown>): void => {
    const config: Record<string, unknown> = JSON.parse(readFileSync(dir.configPath, 'utf8'));
    writeFileSync(dir.configPath, JSON.stringify({ ...config, metrics }, null, 2));
  };
  const start = async (): Promise<Daemon> => {
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
    return daemon;
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2emetrics');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], defaultDurationSeconds: 60, metrics: { listen: `127.0.0.1:${METRICS_PORT}` } });
    alice = dir.userKey('alice');
    mallory = dir.userKey('mallory');
    dir.writeUsers({ alice: userEntry(alice) });
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('before any knock: every drop reason at zero, nothing accepted, no grant; the endpoint is on loopback only', async () => {
    const d = await start();
    assert.equal((await d.event('server.started'))['metrics'], `127.0.0.1:${METRICS_PORT}`);
    const page = await scrape();
    assert.equal(value(page, 'sesame_knocks_accepted_total'), 0);
    for (const reason of ['bad_length', 'bad_mac', 'replay', 'unknown_key', 'revoked', 'internal_error', 'bad_frame_not_ip']) assert.equal(dropped(page, reason), 0, reason);
    assert.equal(value(page, 'sesame_grants_open'), 0);
    assert.equal(value(page, 'sesame_users_source_state{state="file"}'), 1);
    assert.equal(value(page, 'sesame_users_document_version'), 1);
    const synced = value(page, 'sesame_users_last_sync_timestamp_seconds') ?? 0;
    assert.ok(Math.abs(synced - Date.now() / 1000) < 60, `last sync ${synced} is about now`);
    const other = await httpRequest(topo.server.ns, '127.0.0.1', METRICS_PORT, '/');
    assert.equal(other.status, 404);
    assert.equal((await httpRequest(topo.server.ns, '127.0.0.1', METRICS_PORT, '/metrics', 'POST')).status, 405);
    const fromClient = await probeTcp(topo.client.ns, topo.server.v4, METRICS_PORT, 1000);
    assert.deepEqual(fromClient, { state: 'error', code: 'ECONNREFUSED' }, 'nothing listens on the server address');
  });

  test('a good knock and junk: accepted and dropped counters by reason, the grant in the gauge, one grant latency', async () => {
    const d = daemon ?? assert.fail('no daemon');
    const good = knock(alice);
    let since = d.events.length;
    await send(good);
    await d.event('grant.opened', 5000, since);
    since = d.events.length;
    await send(good); // replay
    // Junk that the kernel's gate lets through (other junk never reaches the daemon: see flood.test.ts): a version 1
    // header (the old-version trickle), and a valid token with a damaged box (mac1 fails).
    const oldVersion = Uint8Array.from(good);
    oldVersion[3] = 0x01;
    await send(oldVersion); // old_version
    const damaged = Uint8Array.from(good);
    damaged[40] = (damaged[40] ?? 0) ^ 0xff;
    await send(damaged); // bad_mac
    await send(knock(mallory)); // unknown_key
    for (const reason of ['replay', 'old_version', 'bad_mac', 'unknown_key']) await d.dropped(reason, 5000, since);
    await sleep(FRESH_MS);
    const page = await scrape();
    assert.equal(value(page, 'sesame_knocks_accepted_total'), 1);
    for (const reason of ['replay', 'old_version', 'bad_mac', 'unknown_key']) assert.equal(dropped(page, reason), 1, reason);
    assert.equal(dropped(page, 'stale'), 0);
    const allDrops = page.split('\n').filter((l) => l.startsWith('sesame_knocks_dropped_total{')).reduce((sum, l) => sum + Number(l.split(' ')[1]), 0);
    assert.equal(allDrops, 4, 'each of the 5 packets is one accepted knock or one drop');
    assert.equal(value(page, 'sesame_grants_open'), 1, 'the grant, read from the kernel');
    assert.equal(value(page, 'sesame_grant_latency_seconds_count'), 1);
    assert.equal(value(page, 'sesame_grant_latency_seconds_bucket{le="+Inf"}'), 1);
    assert.ok((value(page, 'sesame_grant_latency_seconds_sum') ?? 0) > 0);
  });

  test('revoking: the grant leaves the gauge, one revoke latency, a users reload, the next document version; a bad file counts as failed', async () => {
    const d = daemon ?? assert.fail('no daemon');
    let since = d.events.length;
    dir.writeUsers({});
    await d.event('grant.closed', 5000, since);
    await sleep(FRESH_MS);
    let page = await scrape();
    assert.equal(value(page, 'sesame_grants_open'), 0);
    assert.equal(value(page, 'sesame_revoke_latency_seconds_count'), 1);
    assert.equal(value(page, 'sesame_reloads_total{document="users",result="ok"}'), 1);
    assert.equal(value(page, 'sesame_users_document_version'), 2);
    since = d.events.length;
    writeFileSync(dir.usersPath, '{"users": ');
    await d.event('users.rejected', 5000, since);
    page = await scrape();
    assert.equal(value(page, 'sesame_reloads_total{document="users",result="failed"}'), 1);
    assert.equal(value(page, 'sesame_users_document_version'), 2, 'a refused document is no new version');
  });

  test('a changed metrics address waits for a restart; the restarted daemon serves a unix socket and counts the grants it did not open', async () => {
    const d = daemon ?? assert.fail('no daemon');
    dir.writeUsers({ alice: userEntry(alice) });
    let since = d.events.length;
    await d.event('users.reloaded', 5000, since);
    await send(knock(alice));
    await d.event('grant.opened', 5000, since);
    since = d.events.length;
    setConfig({ listen: 'unix:metrics.sock' });
    const restart = await d.event('config.restart_needed', 5000, since);
    assert.deepEqual(restart['settings'], ['metrics']);
    await d.event('config.reloaded', 5000, since);
    const page = await scrape();
    assert.equal(value(page, 'sesame_reloads_total{document="config",result="ok"}'), 1, 'still served where it was');
    await d.kill('SIGTERM');
    const next = await start();
    assert.equal((await next.event('server.started'))['metrics'], `unix:${join(dir.dir, 'metrics.sock')}`);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: join(dir.dir, 'metrics.sock'), path: '/metrics', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => { text += s; });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(value(body, 'sesame_knocks_accepted_total'), 0, 'counters start again with the process');
    assert.equal(value(body, 'sesame_grants_open'), 1, 'the grant opened before the restart is in the kernel, so in the gauge');
    await assert.rejects(httpRequest(topo.server.ns, '127.0.0.1', METRICS_PORT, '/metrics'), /ECONNREFUSED/, 'the old address is closed');
  });

  test('a metrics address in use fails the start at once: exit 8, one line naming the address, no daemon left', async () => {
    await daemon?.kill('SIGTERM');
    setConfig({ listen: `127.0.0.1:${METRICS_PORT}` });
    const squatter = await startTcpListener(topo.server.ns, '127.0.0.1', METRICS_PORT, 'not sesame');
    try {
      daemon = new Daemon(topo.server.ns, dir.configPath);
      assert.equal(await daemon.exited, 8);
      assert.equal(daemon.stderr.join('').trim(), `sesame: cannot open the metrics endpoint 127.0.0.1:${METRICS_PORT}: EADDRINUSE`);
      assert.equal(daemon.events.some((e) => e.event === 'server.started'), false);
    } finally {
      await squatter.stop();
    }
  });
});
