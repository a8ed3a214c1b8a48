// End to end: users added, revoked and corrupted while the real daemon runs in a namespace; per-user policy enforced on real traffic.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parseAddress } from '../../src/protocol/address.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { KnockRequest } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const PORT = 2222;

describe('users and revocation end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let alice: UserKeys;
  let bob: UserKeys;
  let carol: UserKeys;
  const listeners: { stop: () => Promise<void> }[] = [];
  const cli = (...args: string[]) => promisify(execFile)(process.execPath, [CLI, ...args, '-c', dir.configPath]);
  const elsewhere = parseAddress('10.99.0.1') ?? assert.fail('address');
  const knock = (user: UserKeys, extra: Partial<KnockRequest> = {}): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: PORT }], ...extra }, user, dir.serverKeys.publicKey, Date.now(), systemRandom);
  const send = (packet: Uint8Array, from = topo.client.v4): Promise<void> => sendUdp(topo.client.ns, topo.server.v4, 62201, packet, from);
  const setElements = async (): Promise<string> => (await execIn(topo.server.ns, ['nft', 'list', 'map', 'inet', 'sesame', 'allow4'])).stdout;
  const start = async (): Promise<Daemon> => {
    const d = new Daemon(topo.server.ns, dir.configPath);
    await d.event('server.started', 10_000);
    return d;
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2eusr');
    dir = makeServerDir({ protect: [`tcp/${PORT}`], maxDurationSeconds: 300 });
    alice = dir.userKey('alice');
    bob = dir.userKey('bob');
    carol = dir.userKey('carol');
    dir.writeUsers({ bob: userEntry(bob, { from: [`${topo.client.v4b}/32`], maxDurationSeconds: 45 }) });
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
    daemon = await start();
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('a user added while the daemon runs can knock within a second', async () => {
    const since = daemon.events.length;
    await cli('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--ports', `tcp/${PORT}`);
    const t0 = Date.now();
    await daemon.event('users.reloaded', 1000, since);
    assert.ok(Date.now() - t0 < 1000);
    await send(knock(alice, { durationSeconds: 120 }));
    await daemon.event('grant.opened', 2000, since);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400), true);
  });

  test('revoking a user with an open grant closes it at once; their next knock is refused as revoked', async () => {
    assert.match(await setElements(), new RegExp(topo.client.v4.replaceAll('.', '\\.')));
    const since = daemon.events.length;
    await cli('user', 'revoke', 'alice', '--reason', 'test');
    await daemon.event('grant.closed', 1000, since);
    const revokedEvent = await daemon.event('user.revoked', 100, since);
    assert.equal(revokedEvent['user'], 'alice');
    assert.doesNotMatch(await setElements(), new RegExp(topo.client.v4.replaceAll('.', '\\.')), 'element gone from the set');
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400), false, 'new connections fail now, not at the 120 s timeout');
    await send(knock(alice));
    await daemon.dropped('revoked', 2000, since);
  });

  test('revocation survives a restart', async () => {
    await daemon.kill('SIGKILL');
    daemon = await start();
    await send(knock(alice));
    await daemon.dropped('revoked', 2000);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400), false);
  });

  test('a corrupted users file written while the daemon runs changes nobody\'s access', async () => {
    let since = daemon.events.length;
    writeFileSync(dir.usersPath, '{"users": {"carol": {"keys": [{"key": "x"}], "ports": ["tcp/2222"]}, "bob": ');
    await daemon.event('users.rejected', 2000, since);
    since = daemon.events.length;
    await send(knock(carol));
    await daemon.dropped('unknown_key', 2000, since);
    await send(knock(bob), topo.client.v4b);
    await daemon.event('grant.opened', 2000, since);
    // A well-formed file that fails validation is refused the same way.
    since = daemon.events.length;
    writeFileSync(dir.usersPath, JSON.stringify({ users: { carol: userEntry(carol, { ports: ['tcp/99999'] }) } }));
    await daemon.event('users.rejected', 2000, since);
    await send(knock(carol));
    await daemon.dropped('unknown_key', 2000, since);
  });

  test('SIGHUP reloads the users file', async () => {
    dir.writeUsers({ bob: userEntry(bob, { from: [`${topo.client.v4b}/32`], maxDurationSeconds: 45 }), carol: userEntry(carol, { mayOpenOtherAddress: true }) });
    await sleep(300);
    const since = daemon.events.length;
    process.kill(daemon.pid ?? 0, 'SIGHUP');
    const e = await daemon.event('users.reloaded', 1000, since);
    assert.equal(e['users'], 2);
  });

  test('policy: source CIDRs, address override, duration cap, ports', async () => {
    let since = daemon.events.length;
    await send(knock(bob), topo.client.v4);
    await daemon.dropped('source_not_allowed', 2000, since);
    await send(knock(bob, { openAddress: elsewhere }), topo.client.v4b);
    await daemon.dropped('address_not_allowed', 2000, since);
    await send(knock(bob, { access: [{ proto: 'udp', port: PORT }] }), topo.client.v4b);
    await daemon.dropped('port_not_allowed', 2000, since);
    await send(knock(bob, { durationSeconds: 3600 }), topo.client.v4b);
    const capped = await daemon.event('grant.opened', 2000, since);
    assert.equal(capped['ttlSeconds'], 45, "capped at bob's maxDurationSeconds");
    since = daemon.events.length;
    await send(knock(carol, { openAddress: elsewhere }), topo.client.v4);
    const other = await daemon.event('grant.opened', 2000, since);
    assert.equal(other['address'], '10.99.0.1', 'carol may name another address; it is what opens');
    assert.match(await setElements(), /10\.99\.0\.1 \. tcp \. 2222/);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400), false, "the knock's own source was not opened");
  });

  test('an emergency revoke works on a users file someone broke elsewhere, and the daemon applies it at once', async () => {
    let since = daemon.events.length;
    await send(knock(carol, { durationSeconds: 120 }), topo.client.v4);
    await daemon.event('grant.opened', 2000, since);
    // Someone hand-edits the file and breaks another user's entry: the daemon refuses it and keeps the last good version.
    const good = JSON.parse(readFileSync(dir.usersPath, 'utf8')) as { users: Record<string, unknown> };
    since = daemon.events.length;
    writeFileSync(dir.usersPath, JSON.stringify({ ...good, users: { ...good.users, dave: { keys: [], ports: ['tcp/99999'] } } }));
    await daemon.event('users.rejected', 2000, since);
    since = daemon.events.length;
    const r = await cli('user', 'revoke', 'carol', '--reason', 'laptop stolen');
    assert.match(r.stdout, /revoked 1 key\(s\) of carol/);
    assert.match(r.stdout, /warning: .*users\.json does not validate .* applies it now/);
    await daemon.event('users.revocations_applied', 2000, since);
    const revoked = await daemon.event('key.revoked', 100, since);
    assert.equal(revoked['user'], 'carol');
    await daemon.waitFor((e) => e.event === 'grant.closed' && e['user'] === 'carol', 2000, since);
    await send(knock(carol));
    await daemon.dropped('revoked', 2000, since);
    await send(knock(bob), topo.client.v4b);
    await daemon.event('grant.opened', 2000, since);
    // A revoke that cannot find the user's keys in the broken file changes nothing.
    writeFileSync(dir.usersPath, '{"users": 7}');
    await assert.rejects(cli('user', 'revoke', 'bob'), /cannot find user "bob"'s keys in the broken users file, so nothing was revoked/);
    assert.equal(readFileSync(dir.usersPath, 'utf8'), '{"users": 7}');
  });
});
