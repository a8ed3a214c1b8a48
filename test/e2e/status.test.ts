// End to end: one daemon per table (a second is refused and leaves it alone), `sesame status` and `sesame grant close` on the kernel's grants, and policy edits that close what no longer fits — the real daemon, CLI and nftables in namespaces.
import assert from 'node:assert/strict';
import { readTable } from '../../src/server/nft-read.ts';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddress } from '../../src/protocol/address.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { toHex } from '../../src/protocol/bytes.ts';
import { deriveKeyId } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn, run } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { openHeldConnection, sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import type { HeldConnection } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const PORT = 2222;
const OTHER_PORT = 2223;
const KNOCK_PORT = 62201;

/** What `sesame status --json` promises; the rest of its report is not checked here. */
interface StatusReport {
  readonly daemon: { readonly running: boolean; readonly pid?: number };
  readonly grants: readonly { readonly user: string; readonly keyId: string; readonly address: string; readonly port: string; readonly expiresInSeconds: number }[];
}

/** A grant as `nft -j list map` shows it: [{elem: {val: {concat: [address, proto, port]}, comment}}, mark]. */
interface Element {
  readonly address: string;
  readonly port: number;
  readonly keyId: string;
}

const keyIdOf = (u: UserKeys): string => toHex(deriveKeyId(u.publicKey));

/** The elements of the grant maps in nft's JSON, read by the daemon's own reader (src/server/nft-read.ts). */
const parseElements = (json: string): Element[] => readTable(json).grants.map((g) => ({ address: g.address.text, port: g.access.port, keyId: g.owner.keyIdHex }));

describe('status, grant close, policy changes and one daemon per table, end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let alice: UserKeys;
  let bob: UserKeys;
  let dave: UserKeys;
  let v6: string;
  const listeners: { stop: () => Promise<void> }[] = [];
  const held: HeldConnection[] = [];
  const others: Daemon[] = [];
  const otherDirs: ServerDir[] = [];

  const start = async (): Promise<Daemon> => {
    const d = new Daemon(topo.server.ns, dir.configPath);
    await d.event('server.started', 10_000);
    return d;
  };
  const knock = (u: UserKeys, from: string, ports: readonly number[] = [PORT], durationSeconds = 120): Promise<void> => {
    const packet = buildKnock({ access: ports.map((port) => ({ proto: 'tcp' as const, port })), durationSeconds }, u, dir.serverKeys.publicKey, Date.now(), systemRandom);
    return sendUdp(topo.client.ns, from.includes(':') ? topo.server.v6 : topo.server.v4, KNOCK_PORT, packet, from);
  };
  const grantFor = async (name: string, u: UserKeys, from: string, ports: readonly number[] = [PORT], durationSeconds = 120): Promise<void> => {
    const since = daemon.events.length;
    await knock(u, from, ports, durationSeconds);
    for (const port of ports) {
      await daemon.waitFor((e) => e.event === 'grant.opened' && e['user'] === name && e['port'] === `tcp/${port}`, 3000, since, `grant.opened for ${name} tcp/${port}`);
    }
  };
  const connect = (from: string, port = PORT): Promise<boolean> =>
    tcpConnect(topo.client.ns, from.includes(':') ? topo.server.v6 : topo.server.v4, port, 400, from);
  const hold = async (from: string): Promise<HeldConnection> => {
    const h = await openHeldConnection(topo.client.ns, topo.server.v4, PORT, from);
    held.push(h);
    return h;
  };
  /** `sesame user ...` on the host, as an admin would run it: it only edits the users file. */
  const cliRun = (...args: string[]): Promise<ExecResult> => run(process.execPath, [CLI, ...args, '-c', dir.configPath]);
  const cli = async (...args: string[]): Promise<string> => {
    const r = await cliRun(...args);
    assert.equal(r.code, 0, `sesame ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** `sesame status` and `sesame grant` read and change the kernel: they run in the server's namespace. */
  const cliIn = async (...args: string[]): Promise<string> => {
    const r = await execIn(topo.server.ns, [process.execPath, CLI, ...args, '-c', dir.configPath]);
    assert.equal(r.code, 0, `sesame ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const status = async (): Promise<StatusReport> => JSON.parse(await cliIn('status', '--json'));
  const elements = async (map: 'allow4' | 'allow6' = 'allow4'): Promise<Element[]> => {
    const r = await execIn(topo.server.ns, ['nft', '-j', 'list', 'map', 'inet', 'sesame', map]);
    assert.equal(r.code, 0, r.stderr);
    return parseElements(r.stdout);
  };
  const owned = async (u: UserKeys, map: 'allow4' | 'allow6' = 'allow4'): Promise<Element[]> => (await elements(map)).filter((e) => e.keyId === keyIdOf(u));
  /** The table as nft prints it, without what changes by itself: countdowns, and the slot tokens the daemon replaces every 30 s. */
  const table = async (name: string): Promise<string> => {
    const r = await execIn(topo.server.ns, ['nft', 'list', 'table', 'inet', name]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.replace(/ expires [0-9dhms]+/g, '').replace(/(set tokens \{[^}]*?)elements = \{[^}]*\}/, '$1');
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2esta');
    v6 = parseAddress(topo.client.v6)?.text ?? assert.fail('client IPv6 address');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`, `tcp/${OTHER_PORT}`], maxDurationSeconds: 300 });
    alice = dir.userKey('alice');
    bob = dir.userKey('bob');
    dave = dir.userKey('dave');
    dir.writeUsers({ alice: userEntry(alice), bob: userEntry(bob), dave: userEntry(dave, { ports: [`tcp/${PORT}`, `tcp/${OTHER_PORT}`] }) });
    for (const port of [PORT, OTHER_PORT]) listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', port), await startTcpListener(topo.server.ns, '::', port));
    daemon = await start();
  });

  after(async () => {
    for (const h of held) await h.close().catch(() => {});
    for (const d of [daemon, ...others]) await d?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    for (const d of [dir, ...otherDirs]) d?.remove();
  });

  test('a second daemon for the same table refuses to start, names the first and leaves its table alone; another table coexists', async () => {
    const before = await table('sesame');
    assert.match(before, new RegExp(`udp dport ${KNOCK_PORT} `), "A's knock-port guard");
    assert.match(before, new RegExp(`tcp \\. ${PORT}`), "A's protected ports");
    // B differs in knock port and protected port, so anything it wrote into the table would show.
    // (Knock ports outside the default confirmation range 62202-62217, which A's own table names.)
    const dirB = makeServerDir({ knockPort: 62302, protect: ['tcp/2299'] });
    otherDirs.push(dirB);
    const t0 = performance.now();
    const b = new Daemon(topo.server.ns, dirB.configPath);
    others.push(b);
    const code = await Promise.race([b.exited, sleep(10_000).then(() => 'still running')]);
    const stderr = b.stderr.join('');
    assert.equal(code, 7, `B must exit with the firewall code: ${stderr}`);
    assert.ok(performance.now() - t0 < 5000, 'and at once');
    assert.match(stderr, new RegExp(`is managed by another sesame daemon, pid ${daemon.pid ?? 0}\\b`));
    assert.equal(await table('sesame'), before, "A's table is unchanged");

    await grantFor('alice', alice, topo.client.v4);
    assert.equal(await connect(topo.client.v4), true, 'A still grants');

    const dirC = makeServerDir({ knockPort: 62303, protect: ['tcp/2224'], firewall: { table: 'sesame_c' } });
    otherDirs.push(dirC);
    const c = new Daemon(topo.server.ns, dirC.configPath);
    others.push(c);
    await c.event('server.started', 10_000);
    assert.match(await table('sesame_c'), /udp dport 62303 /);
    const after = await table('sesame');
    assert.match(after, new RegExp(`udp dport ${KNOCK_PORT} `));
    assert.doesNotMatch(after, /62302|62303|2299|2224/, "neither B nor C wrote into A's table");
    await c.kill('SIGTERM');
    assert.equal(await connect(topo.client.v4), true, 'A still grants');
  });

  test('sesame status --json lists each grant with owner and time left, whether the daemon runs or not', async () => {
    await grantFor('alice', alice, topo.client.v4);
    const running = await status();
    assert.deepEqual(running.daemon, { running: true, pid: daemon.pid });
    const mine = running.grants.filter((g) => g.keyId === keyIdOf(alice));
    assert.equal(mine.length, 1, JSON.stringify(running.grants));
    const [g] = mine;
    assert.deepEqual([g?.user, g?.address, g?.port], ['alice', topo.client.v4, `tcp/${PORT}`]);
    assert.ok(g !== undefined && g.expiresInSeconds > 0 && g.expiresInSeconds <= 120, `expiresInSeconds ${g?.expiresInSeconds}`);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await daemon.kill(signal);
      const stopped = await status();
      assert.deepEqual(stopped.daemon, { running: false }, `after ${signal}`);
      assert.equal(stopped.grants.filter((x) => x.keyId === keyIdOf(alice) && x.address === topo.client.v4).length, 1, 'the grant is still in the kernel and listed');
      daemon = await start();
    }
  });

  test("sesame grant close --user closes the user's grants and cuts their sessions; the user can knock again", async () => {
    await grantFor('alice', alice, topo.client.v4);
    const session = await hold(topo.client.v4);
    assert.equal(await session.isAlive(), true);
    assert.match(await cliIn('grant', 'close', '--user', 'alice'), /closed 1 grant/);
    assert.deepEqual(await owned(alice), []);
    assert.equal(await session.isAlive(), false, 'the session the grant admitted is cut');
    assert.equal(await connect(topo.client.v4), false);
    assert.equal((await status()).grants.some((g) => g.user === 'alice'), false);
    await grantFor('alice', alice, topo.client.v4);
    assert.equal(await connect(topo.client.v4), true, 'the key stays valid');
    assert.equal(await (await hold(topo.client.v4)).isAlive(), true);
  });

  test('sesame grant close --address closes the grants for that address and cuts their sessions, also with the daemon stopped', async () => {
    const alices = await hold(topo.client.v4);
    await grantFor('bob', bob, topo.client.v4b);
    const bobs = await hold(topo.client.v4b);
    await daemon.kill('SIGTERM');
    assert.match(await cliIn('grant', 'close', '--address', topo.client.v4b), /closed 1 grant/);
    assert.deepEqual((await elements()).filter((e) => e.address === topo.client.v4b), []);
    assert.equal(await bobs.isAlive(), false, "bob's session from that address is cut");
    assert.equal(await connect(topo.client.v4b), false);
    assert.equal(await alices.isAlive(), true, "alice's session from another address keeps working");
    assert.equal(await connect(topo.client.v4), true, "alice's grant for another address stays open");
    daemon = await start();
    await grantFor('bob', bob, topo.client.v4b);
    assert.equal(await connect(topo.client.v4b), true, 'bob can knock again');
  });

  test('sesame user set: narrowing closes the grants that no longer fit (grant.closed, why policy), logged as user.changed', async () => {
    await grantFor('dave', dave, topo.client.v6, [PORT, OTHER_PORT], 300);
    assert.deepEqual((await owned(dave, 'allow6')).map((e) => e.port).sort(), [PORT, OTHER_PORT]);
    let since = daemon.events.length;
    await cli('user', 'set', 'dave', '--ports', `tcp/${OTHER_PORT}`);
    const changed = await daemon.waitFor((e) => e.event === 'user.changed' && e['user'] === 'dave', 3000, since, 'user.changed');
    const ports = (policy: unknown): unknown => (typeof policy === 'object' && policy !== null && 'ports' in policy ? policy.ports : undefined);
    assert.deepEqual([ports(changed['before']), ports(changed['after'])], [[`tcp/${PORT}`, `tcp/${OTHER_PORT}`], [`tcp/${OTHER_PORT}`]]);
    const closed = await daemon.waitFor((e) => e.event === 'grant.closed' && e['user'] === 'dave', 3000, since, 'grant.closed');
    assert.deepEqual([closed['keyId'], closed['address'], closed['port'], closed['why']], [keyIdOf(dave), v6, `tcp/${PORT}`, 'policy']);
    assert.deepEqual((await owned(dave, 'allow6')).map((e) => e.port), [OTHER_PORT], 'the grant that still fits stays');
    assert.equal(await connect(topo.client.v6), false);
    assert.equal(await connect(topo.client.v6, OTHER_PORT), true);
    assert.ok((await owned(alice)).length > 0, "other users' grants stay");

    // A lower cap closes the grants that would outlast it.
    since = daemon.events.length;
    await cli('user', 'set', 'dave', '--max-duration', '60');
    const capped = await daemon.waitFor((e) => e.event === 'grant.closed' && e['user'] === 'dave', 3000, since, 'grant.closed');
    assert.deepEqual([capped['port'], capped['why']], [`tcp/${OTHER_PORT}`, 'policy']);
    assert.deepEqual(await owned(dave, 'allow6'), []);
    assert.equal(await connect(topo.client.v6, OTHER_PORT), false);
    assert.equal(daemon.events.slice(since).some((e) => e.event === 'grant.closed' && e['user'] !== 'dave'), false);
  });

  test('sesame user add, revoke and add --force are logged as key.added, key.revoked with user.revoked, and key.reinstated', async () => {
    const erin = dir.userKey('erin');
    const id = keyIdOf(erin);
    const pub = `${dir.dir}/erin.pub`;
    const wait = (event: string, since: number) => daemon.waitFor((e) => e.event === event && e['keyId'] === id, 3000, since, event);
    let since = daemon.events.length;
    await cli('user', 'add', 'erin', '--key', pub, '--ports', `tcp/${PORT}`);
    assert.equal((await wait('key.added', since))['user'], 'erin');
    since = daemon.events.length;
    await cli('user', 'revoke', 'erin', '--reason', 'audit test');
    const revoked = await wait('key.revoked', since);
    assert.deepEqual([revoked['user'], revoked['removed'], revoked['keepSessions']], ['erin', false, false]);
    assert.equal((await wait('user.revoked', since))['user'], 'erin');
    await knock(erin, topo.client.v4b);
    await daemon.dropped('revoked', 3000, since);
    assert.notEqual((await cliRun('user', 'add', 'erin', '--key', pub)).code, 0, 'a revoked key comes back only with --force');
    since = daemon.events.length;
    await cli('user', 'add', 'erin', '--key', pub, '--force');
    assert.equal((await wait('key.reinstated', since))['user'], 'erin');
    await grantFor('erin', erin, topo.client.v4b);
  });
});
