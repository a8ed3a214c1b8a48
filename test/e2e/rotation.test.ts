// End to end: server key rotation without a flag day (old and new key both work during the overlap, only the new one after, no restart), and what a config reload changes in the running daemon (SIGHUP and the file watch) versus what waits for a restart.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { KnockRequest } from '../../src/protocol/build.ts';
import { readServerPublicKey } from '../../src/protocol/keyfile.ts';
import { fingerprint } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import type { ServerPublicKey } from '../../src/protocol/bytes.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;

describe('server key rotation and config reload', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let alice: UserKeys;
  let oldKey: ServerPublicKey;
  let newKey: ServerPublicKey;
  const listeners: { stop: () => Promise<void> }[] = [];

  const knock = (server: ServerPublicKey, extra: Partial<KnockRequest> = {}): Promise<void> =>
    sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, buildKnock({ access: [{ proto: 'tcp', port: PORT }], ...extra }, alice, server, Date.now(), systemRandom));
  const config = (): Record<string, unknown> => JSON.parse(readFileSync(dir.configPath, 'utf8')) as Record<string, unknown>;
  const writeConfig = (c: Record<string, unknown>): void => writeFileSync(dir.configPath, JSON.stringify(c, null, 2));
  /** Rewrites the config, then SIGHUP; resolves with the daemon's config.reloaded event. */
  const reload = async (change: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const since = daemon.events.length;
    writeConfig({ ...config(), ...change });
    process.kill(daemon.pid ?? 0, 'SIGHUP');
    return daemon.event('config.reloaded', 5000, since);
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2erot');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], maxDurationSeconds: 300 });
    alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice) });
    oldKey = dir.serverKeys.publicKey;
    const made = await promisify(execFile)(process.execPath, [CLI, 'keygen', '--server', '-f', join(dir.dir, 'new.key')]);
    assert.match(made.stdout, /new\.pub/);
    newKey = readServerPublicKey(join(dir.dir, 'new.pub')).key;
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
    daemon = new Daemon(topo.server.ns, dir.configPath);
    const started = await daemon.event('server.started', 10_000);
    assert.deepEqual(started['serverKeys'], [fingerprint(oldKey)]);
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('add the new key: both keys open during the overlap, each named in knock.accepted; retire the old one: only the new key works; no restart', async () => {
    const pid = daemon.pid;
    let reloaded = await reload({ serverKey: undefined, serverKeys: ['server.key', 'new.key'] });
    assert.deepEqual(reloaded['serverKeys'], [fingerprint(oldKey), fingerprint(newKey)]);
    let since = daemon.events.length;
    await knock(oldKey);
    assert.equal((await daemon.event('knock.accepted', 3000, since))['serverKey'], fingerprint(oldKey), 'a user still on the old key gets in, and the log says which key');
    since = daemon.events.length;
    await knock(newKey);
    assert.equal((await daemon.event('knock.accepted', 3000, since))['serverKey'], fingerprint(newKey));
    reloaded = await reload({ serverKeys: ['new.key'] });
    assert.deepEqual(reloaded['serverKeys'], [fingerprint(newKey)]);
    since = daemon.events.length;
    await knock(oldKey);
    await sleep(300);
    assert.equal(daemon.events.slice(since).some((e) => e.event === 'knock.accepted' || e.event === 'knock.dropped'), false, 'the retired key\'s tokens left the kernel gate: its knock never reaches the daemon');
    await knock(newKey);
    await daemon.event('knock.accepted', 3000, since);
    assert.equal(daemon.pid, pid, 'the same process throughout');
  });

  test('a broken config is refused whole: the running keys and limits stay', async () => {
    const good = config();
    const since = daemon.events.length;
    writeConfig({ ...good, serverKeys: ['missing.key'] });
    process.kill(daemon.pid ?? 0, 'SIGHUP');
    const refused = await daemon.event('config.rejected', 5000, since);
    assert.match(JSON.stringify(refused['errors']), /missing\.key/);
    await knock(newKey);
    await daemon.event('knock.accepted', 3000, since);
    writeConfig(good);
    await daemon.event('config.reloaded', 5000, since);
  });

  test('durations, protected ports and the log level apply on reload (the file watch alone is enough); the knock port waits for a restart', async () => {
    let since = daemon.events.length;
    writeConfig({ ...config(), maxDurationSeconds: 45, protect: [`tcp/${PORT}`, 'tcp/2223'], knockPort: 62999 });
    const reloaded = await daemon.event('config.reloaded', 5000, since);
    assert.deepEqual([...(reloaded['applied'] as string[])].sort(), ['maxDurationSeconds', 'protect']);
    const restart = await daemon.event('config.restart_needed', 100, since);
    assert.deepEqual(restart['settings'], ['knockPort']);
    assert.match((await execIn(topo.server.ns, ['nft', 'list', 'set', 'inet', 'sesame', 'protected'])).stdout, /tcp \. 2223/);
    since = daemon.events.length;
    await knock(newKey, { durationSeconds: 300 });
    assert.equal((await daemon.event('grant.opened', 3000, since))['ttlSeconds'], 45, 'the new cap');
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 2000), true, 'still on the old knock port');
    await reload({ logLevel: 'warn', knockPort: KNOCK_PORT });
    since = daemon.events.length;
    await knock(newKey);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(!daemon.events.slice(since).some((e) => e.event === 'knock.accepted'), 'info lines are off at level warn');
  });
});
