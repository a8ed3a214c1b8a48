// End to end: the real daemon in a network namespace with real nftables, a real TCP service, knocks sent over real UDP from another namespace.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddress } from '../../src/protocol/address.ts';
import { generateServerKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { KnockRequest } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { concat } from '../../src/protocol/bytes.ts';
import { WIRE } from '../../src/protocol/layout.ts';
import { retoken, staleWithToken } from '../helpers/knocks.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { openHeldConnection, sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;

describe('sesame server end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let alice: UserKeys;
  let mallory: UserKeys;
  const listeners: { stop: () => Promise<void> }[] = [];

  const request = (extra: Partial<KnockRequest> = {}): KnockRequest => ({ access: [{ proto: 'tcp', port: PORT }], ...extra });
  const knock = (user: UserKeys, extra: Partial<KnockRequest> = {}, nowMs = Date.now(), server = dir.serverKeys.publicKey): Uint8Array =>
    buildKnock(request(extra), user, server, nowMs, systemRandom);
  const send = (packet: Uint8Array, to = topo.server.v4, from?: string): Promise<void> => sendUdp(topo.client.ns, to, KNOCK_PORT, packet, from);
  const connect = (host = topo.server.v4, timeoutMs = 400): Promise<boolean> => tcpConnect(topo.client.ns, host, PORT, timeoutMs);
  const allowed = async (): Promise<string> => {
    const r = await execIn(topo.server.ns, ['nft', 'list', 'table', 'inet', 'sesame']);
    // What changes by itself: countdowns, and the slot tokens the daemon replaces every 30 s. The rest must not change.
    return r.stdout.replace(/ expires [0-9dhms]+/g, '').replace(/(set tokens \{[^}]*?)elements = \{[^}]*\}/, '$1');
  };
  const start = async (): Promise<Daemon> => {
    const d = new Daemon(topo.server.ns, dir.configPath);
    await d.event('server.started', 10_000);
    return d;
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2esrv');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], defaultDurationSeconds: 30, maxDurationSeconds: 60 });
    alice = dir.userKey('alice');
    mallory = dir.userKey('mallory');
    dir.writeUsers({ alice: userEntry(alice) });
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT), await startTcpListener(topo.server.ns, '::', PORT));
    daemon = await start();
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('a protected port is closed before a knock and open after one', async () => {
    assert.equal(await connect(), false, 'port must be closed before any knock');
    const since = daemon.events.length;
    await send(knock(alice));
    const opened = await daemon.event('grant.opened', 3000, since);
    assert.equal(opened['user'], 'alice');
    assert.equal(opened['address'], topo.client.v4);
    assert.equal(await connect(), true, 'port must be open after a valid knock');
    assert.match(await allowed(), new RegExp(`${topo.client.v4.replaceAll('.', '\\.')} \\. tcp \\. ${PORT}`));
  });

  test('the grant expires in the kernel; a connection made during it stays up', async () => {
    const since = daemon.events.length;
    await send(knock(alice, { durationSeconds: 2 }), topo.server.v4, topo.client.v4b);
    await daemon.event('grant.opened', 3000, since);
    const held = await openHeldConnection(topo.client.ns, topo.server.v4, PORT, topo.client.v4b);
    assert.equal(await held.isAlive(), true);
    await sleep(3200);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4b), false, 'new connections refused after expiry');
    assert.equal(await held.isAlive(), true, 'established connection survives expiry');
    await held.close();
  });

  test('the same packet is refused the second time, also from another address, also after kill -9 and restart', async () => {
    const packet = knock(alice);
    let since = daemon.events.length;
    await send(packet);
    await daemon.event('knock.accepted', 3000, since);
    since = daemon.events.length;
    await send(packet);
    await daemon.dropped('replay', 3000, since);
    await send(packet, topo.server.v4, topo.client.v4b);
    await daemon.waitFor((e) => e.event === 'knock.dropped' && e.reason === 'replay' && e['source'] === topo.client.v4b, 3000, since);
    await daemon.kill('SIGKILL');
    daemon = await start();
    since = daemon.events.length;
    await send(packet, topo.server.v4, topo.client.v4b);
    await daemon.dropped('replay', 3000, since);
    assert.equal(daemon.events.slice(since).some((e) => e.event === 'knock.accepted'), false);
  });

  test('stale, unknown-key, not-allowed-port and other-server knocks are refused with their reason, opening nothing', async () => {
    const before = await allowed();
    const staleMs = staleWithToken(Date.now());
    const cases: [string, Uint8Array][] = [
      ['stale', knock(alice, {}, staleMs)],
      ['unknown_key', knock(mallory)],
      ['port_not_allowed', buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom)],
      // Built for another server, with this server's token put in (the kernel gate lets it by): mac1 tells them apart.
      ['bad_mac', retoken(knock(alice, {}, Date.now(), generateServerKeys().publicKey), dir.serverKeys.publicKey, Date.now())],
    ];
    for (const [reason, packet] of cases) {
      const since = daemon.events.length;
      await send(packet, topo.server.v4, topo.client.v4b);
      const e = await daemon.dropped(reason, 3000, since);
      if (reason === 'stale') assert.ok(typeof e['skewMs'] === 'number' && Math.abs(e['skewMs']) > 30_000 && Math.sign(e['skewMs']) === Math.sign(staleMs - Date.now()), 'the measured skew is logged');
    }
    await sleep(200);
    assert.equal(await allowed(), before, 'nothing was added to the sets');
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4b), false);
  });

  test('a version 1 knock passes the kernel trickle and is logged as old_version, telling the admin to upgrade the client', async () => {
    const v2 = knock(alice);
    const since = daemon.events.length;
    await send(concat(WIRE.oldHeader, v2.subarray(WIRE.headerBytes + WIRE.tokenBytes)), topo.server.v4, topo.client.v4b);
    const e = await daemon.dropped('old_version', 3000, since);
    assert.equal(e['msg'], 'protocol version 1 knock: the client must be upgraded');
  });

  test('with the daemon killed (-9) while a grant is open, the grant still closes at its timeout', async () => {
    const since = daemon.events.length;
    await send(knock(alice, { durationSeconds: 2 }), topo.server.v4, topo.client.v4b);
    await daemon.event('grant.opened', 3000, since);
    await daemon.kill('SIGKILL');
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4b), true, 'open while the grant lasts');
    await sleep(2600);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4b), false, 'closed by the kernel, no daemon running');
    assert.doesNotMatch(await allowed(), new RegExp(`${topo.client.v4b.replaceAll('.', '\\.')} \\. tcp`));
    daemon = await start();
  });

  test('IPv6: knock and connect over IPv6', async () => {
    assert.equal(await connect(topo.server.v6), false);
    const since = daemon.events.length;
    await send(knock(alice), topo.server.v6);
    const opened = await daemon.event('grant.opened', 3000, since);
    assert.equal(opened['address'], parseAddress(topo.client.v6)?.text);
    assert.equal(await connect(topo.server.v6), true);
  });

  test('sesame server --cleanup removes the table: the protected port is open to all again', async () => {
    const since = daemon.events.length;
    await send(knock(alice));
    await daemon.event('grant.opened', 3000, since);
    await daemon.kill('SIGTERM');
    assert.ok((await allowed()).includes('table inet sesame'), 'the table outlives the daemon');
    assert.equal(await connect(topo.server.v4, 400), true, 'a live grant still works with the daemon stopped');
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4b), false, 'no grant for this source: still closed');
    const r = await execIn(topo.server.ns, [process.execPath, CLI, 'server', '-c', dir.configPath, '--cleanup']);
    assert.equal(r.code, 0, r.stderr);
    const tables = await execIn(topo.server.ns, ['nft', 'list', 'tables']);
    assert.doesNotMatch(tables.stdout, /inet sesame/);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4b), true, 'without sesame the port is unguarded');
    daemon = await start();
  });

  test('the daemon never answers: no packet goes back to the knocking host', async () => {
    const r = await execIn(topo.server.ns, ['nft', 'list', 'ruleset']);
    assert.ok(r.stdout.includes('table inet sesame'));
    // A dgram socket that never calls send() cannot answer; check the kernel's counters agree: no UDP datagrams sent.
    const snmp = await execIn(topo.server.ns, ['cat', '/proc/net/snmp']);
    const udp = snmp.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
    const [names, values] = [udp[0]?.split(/\s+/) ?? [], udp[1]?.split(/\s+/) ?? []];
    assert.equal(values[names.indexOf('OutDatagrams')], '0');
    assert.ok(Number(values[names.indexOf('InDatagrams')]) > 0);
  });
});
