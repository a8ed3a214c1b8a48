// End to end: ports published through DNAT to a third namespace (a container behind the server, with Docker's own iptables-nft rules and native nft ones) are closed until a knock, open to the granted source only, closed to new connections at expiry while established ones go on, and cut on revoke and grant close; an input-only port that DNAT bypasses is warned about at start and by --check.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { execIn, run } from '../../src/harness/netns.ts';
import { openHeldConnection, sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import type { HeldConnection } from '../../src/harness/programs.ts';
import { createForwardTopology, skipReason } from '../../src/harness/topology.ts';
import type { ForwardTopology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

/** Docker's rules are made with iptables-nft, as Docker makes them; in CI its absence is an error, as skipReason's are. */
const noIptables = (await run('iptables-nft', ['--version'])).spawnError === undefined ? undefined : 'iptables-nft is missing: apt-get install iptables';
if (noIptables !== undefined && process.env['CI'] !== undefined && process.env['CI'] !== '') throw new Error(`CI must run the forward-path tests, but ${noIptables}`);
const skip = skipReason() ?? noIptables;
const KNOCK_PORT = 62201;
/** The container's service, and the ports the server publishes for it. */
const SERVICE = 80;
const DOCKER = 8080; // published by iptables-nft, as `docker run -p 8080:80` does; protected on both paths (the default)
const VM = 8081; // published by a native nft dnat rule; protected on the forward path only
const INPUT_ONLY = 8082; // published by a native nft dnat rule; protected on the input path only: the bypass the warning names
const REDIRECTED = 8083; // redirected by a native nft rule to LOCAL on the server itself; protected on both paths
const LOCAL = 2222; // an unprotected service on the server
/** Long enough for the checks made while it is open, on a loaded machine. */
const SHORT_SECONDS = 8;
const LONG_SECONDS = 300;
const CONNECT_MS = 600;

describe('published ports on the forward path end to end', { skip }, () => {
  let topo: ForwardTopology;
  let dir: ServerDir;
  let daemon: Daemon;
  const users = new Map<string, UserKeys>();
  const held: HeldConnection[] = [];
  const services: { stop(): Promise<void> }[] = [];

  const tables = async (program: 'iptables-nft' | 'ip6tables-nft', args: readonly string[]): Promise<void> => {
    const r = await execIn(topo.server.ns, [program, ...args]);
    assert.equal(r.code, 0, `${program} ${args.join(' ')}: ${r.stderr}`);
  };
  const iptables = (...args: string[]): Promise<void> => tables('iptables-nft', args);
  /** Docker's rules for `docker run -p PORT:80`, as it makes them for IPv4 (iptables-nft) and IPv6 (ip6tables-nft). */
  const dockerRules = async (program: 'iptables-nft' | 'ip6tables-nft', port: number, ctr: string, ctrAt: string, prefix: number): Promise<void> => {
    for (const args of [
      ['-t', 'nat', '-N', 'DOCKER'],
      ['-t', 'nat', '-A', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'DOCKER'],
      ['-t', 'nat', '-A', 'DOCKER', '!', '-i', 'veth-ctr', '-p', 'tcp', '--dport', String(port), '-j', 'DNAT', '--to-destination', `${ctrAt}:${SERVICE}`],
      ['-N', 'DOCKER'], ['-N', 'DOCKER-USER'], ['-P', 'FORWARD', 'DROP'],
      ['-A', 'FORWARD', '-j', 'DOCKER-USER'],
      ['-A', 'FORWARD', '-o', 'veth-ctr', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ['-A', 'FORWARD', '-o', 'veth-ctr', '-j', 'DOCKER'],
      ['-A', 'FORWARD', '-i', 'veth-ctr', '!', '-o', 'veth-ctr', '-j', 'ACCEPT'],
      ['-A', 'DOCKER', '-d', `${ctr}/${prefix}`, '!', '-i', 'veth-ctr', '-o', 'veth-ctr', '-p', 'tcp', '--dport', String(SERVICE), '-j', 'ACCEPT'],
      ['-A', 'DOCKER-USER', '-j', 'RETURN'],
    ]) await tables(program, args);
  };
  const connect = (port: number, from: string): Promise<boolean> => tcpConnect(topo.client.ns, topo.server.v4, port, CONNECT_MS, from);
  const hold = async (port: number, from: string): Promise<HeldConnection> => {
    const h = await openHeldConnection(topo.client.ns, topo.server.v4, port, from);
    held.push(h);
    return h;
  };
  const knock = async (name: string, ports: readonly number[], durationSeconds: number, from: string): Promise<void> => {
    const since = daemon.events.length;
    const keys = users.get(name) ?? assert.fail(`no user ${name}`);
    const packet = buildKnock({ access: ports.map((port) => ({ proto: 'tcp', port })), durationSeconds }, keys, dir.serverKeys.publicKey, Date.now(), systemRandom);
    await sendUdp(topo.client.ns, from.includes(':') ? topo.server.v6 : topo.server.v4, KNOCK_PORT, packet, from);
    await daemon.waitFor((e) => e.event === 'grant.opened' && e['user'] === name && e['address'] === from, 5000, since, `grant.opened for ${name}`);
  };
  /** The CLI in the server namespace, as root. */
  const cli = (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => execIn(topo.server.ns, [process.execPath, CLI, ...args, '-c', dir.configPath], { timeoutMs: 60_000 });

  before(async () => {
    await loadSodium();
    topo = await createForwardTopology('e2efwd');
    const ctr = topo.container.v4;
    // Docker's rules for `docker run -p 8080:80`, made the way Docker makes them: iptables-nft, tables ip nat and ip filter (and ip6).
    await dockerRules('iptables-nft', DOCKER, ctr, ctr, 32);
    await dockerRules('ip6tables-nft', DOCKER, topo.container.v6, `[${topo.container.v6}]`, 128);
    // A VM host's native rules beside them: its own DNAT and a forward accept of everything to the guest.
    const native = `table ip vmhost {
  chain pre { type nat hook prerouting priority dstnat; policy accept; tcp dport ${VM} dnat to ${ctr}:${SERVICE}; tcp dport ${INPUT_ONLY} dnat to ${ctr}:${SERVICE}; tcp dport ${REDIRECTED} redirect to :${LOCAL}; }
  chain forward_guests { type filter hook forward priority filter; policy accept; ip daddr ${ctr} accept; }
}
`;
    const r = await execIn(topo.server.ns, ['nft', '-f', '-'], { input: native });
    assert.equal(r.code, 0, r.stderr);
    services.push(await startTcpListener(topo.container.ns, '0.0.0.0', SERVICE), await startTcpListener(topo.container.ns, '::', SERVICE));
    services.push(await startTcpListener(topo.server.ns, '0.0.0.0', LOCAL));
    // Traffic the server only routes: a service on the client at a protected port number, which the container reaches through the server.
    services.push(await startTcpListener(topo.client.ns, '0.0.0.0', DOCKER));
    const route = await run('ip', ['-n', topo.client.ns, 'route', 'add', `${ctr.replace(/\.2$/, '.0')}/24`, 'via', topo.server.v4]);
    assert.equal(route.code, 0, route.stderr);
    dir = makeServerDir({ knockPort: KNOCK_PORT, maxDurationSeconds: LONG_SECONDS, protect: [`tcp/${DOCKER}`, { port: `tcp/${VM}`, path: 'forward' }, { port: `tcp/${INPUT_ONLY}`, path: 'input' }, `tcp/${REDIRECTED}`] });
    const entries: Record<string, unknown> = {};
    for (const name of ['alice', 'bob', 'carol', 'dave']) {
      users.set(name, dir.userKey(name));
      entries[name] = userEntry(users.get(name) ?? assert.fail(), { ports: [`tcp/${DOCKER}`, `tcp/${VM}`, `tcp/${INPUT_ONLY}`, `tcp/${REDIRECTED}`] });
    }
    dir.writeUsers(entries);
  });

  after(async () => {
    for (const h of held) await h.close().catch(() => {});
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const service of services) await service.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('control: without sesame, the published ports reach the container through DNAT and forwarding', async () => {
    for (const port of [DOCKER, VM, INPUT_ONLY, REDIRECTED]) assert.equal(await connect(port, topo.client.v4), true, `tcp/${port} before sesame`);
    // IPv6 through a fresh namespace can take a moment (neighbour discovery across two hops): the control waits for it, up
    // to 10 s, so that later "closed" verdicts over IPv6 mean sesame and not a path that was never up.
    const deadline = Date.now() + 10_000;
    let v6 = false;
    while (!(v6 = await tcpConnect(topo.client.ns, topo.server.v6, DOCKER, CONNECT_MS, topo.client.v6)) && Date.now() < deadline) await sleep(250);
    assert.equal(v6, true, `tcp/${DOCKER} over IPv6 before sesame`);
  });

  test('at start, the input-only port that DNAT takes past the input hook is warned about, naming the rule; the others are not', async () => {
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
    const warned = daemon.events.filter((e) => e.event === 'protect.dnat_bypass');
    assert.deepEqual(warned.map((e) => [e['port'], e['rule']]), [[`tcp/${INPUT_ONLY}`, 'ip vmhost pre']]);
    assert.match(String(warned[0]?.['msg']), /"path": "both"/);
  });

  test('--check prints the same warning, exits 0, and shows each port\'s path', async () => {
    const r = await cli('server', '--check');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^sesame: warning: tcp/${INPUT_ONLY} is DNAT'd on this host \\(dnat in ip vmhost pre\\) but protected on the input path only`, 'm'));
    assert.doesNotMatch(r.stderr, new RegExp(`tcp/(${DOCKER}|${VM}) `));
    assert.match(r.stdout, new RegExp(`protecting tcp/${DOCKER}, tcp/${VM} \\(forward path only\\), tcp/${INPUT_ONLY} \\(input path only\\), tcp/${REDIRECTED} in table`));
  });

  test('closed before a knock, whatever the DNAT target and Docker\'s accepts; the input-only port is the bypass the warning named', async () => {
    assert.equal(await connect(DOCKER, topo.client.v4), false, 'Docker-published port');
    assert.equal(await connect(VM, topo.client.v4), false, 'native-DNAT port');
    assert.equal(await connect(INPUT_ONLY, topo.client.v4), true, 'input path only: DNAT takes it past the check');
    await iptables('-I', 'DOCKER-USER', '-j', 'ACCEPT'); // an accept anywhere is not final: sesame's drop still is
    try {
      assert.equal(await connect(DOCKER, topo.client.v4), false, 'with an accept-all in DOCKER-USER');
    } finally {
      await iptables('-D', 'DOCKER-USER', '-j', 'ACCEPT');
    }
  });

  test('a port redirected to a local service is checked by the port addressed: closed, then open for the granted source only', async () => {
    assert.equal(await connect(LOCAL, topo.client.v4), true, 'control: the local service itself is not protected');
    assert.equal(await connect(REDIRECTED, topo.client.v4), false, 'closed before a knock');
    await knock('alice', [REDIRECTED], LONG_SECONDS, topo.client.v4);
    assert.equal(await connect(REDIRECTED, topo.client.v4), true, 'granted source');
    assert.equal(await connect(REDIRECTED, topo.client.v4b), false, 'another client address stays out');
  });

  test('traffic the server only routes is not checked: the container reaches a protected port number on another host', async () => {
    assert.equal(await tcpConnect(topo.container.ns, topo.client.v4, DOCKER, CONNECT_MS), true);
  });

  test('a knock opens the published ports for the granted source only; at expiry new connections fail and the established one goes on', async () => {
    await knock('alice', [DOCKER, VM], SHORT_SECONDS, topo.client.v4);
    const opened = performance.now();
    const session = await hold(DOCKER, topo.client.v4);
    assert.equal(await session.isAlive(), true, 'granted source, Docker port');
    assert.equal(await connect(VM, topo.client.v4), true, 'granted source, native-DNAT port');
    assert.equal(await connect(DOCKER, topo.client.v4b), false, 'another client address stays out');
    assert.ok(performance.now() - opened < SHORT_SECONDS * 1000, 'all of that before the grant expired');
    await sleep(Math.max(0, SHORT_SECONDS * 1000 + 1000 - (performance.now() - opened)));
    assert.equal(await connect(DOCKER, topo.client.v4), false, 'expired: new connections fail');
    assert.equal(await connect(VM, topo.client.v4), false, 'expired: new connections fail');
    assert.equal(await session.isAlive(), true, 'the established forwarded connection survives expiry');
  });

  test('IPv6: Docker\'s ip6tables-nft DNAT is covered the same way, with the allow6 grants', async () => {
    const connect6 = (from: string): Promise<boolean> => tcpConnect(topo.client.ns, topo.server.v6, DOCKER, CONNECT_MS, from);
    assert.equal(await connect6(topo.client.v6), false, 'closed before a knock');
    await knock('dave', [DOCKER], LONG_SECONDS, topo.client.v6);
    assert.equal(await connect6(topo.client.v6), true, 'granted source');
    assert.equal(await connect6(topo.client.v6b), false, 'another client address stays out');
  });

  test('revoke closes the grant and cuts the established forwarded connection it admitted', async () => {
    await knock('bob', [DOCKER], LONG_SECONDS, topo.client.v4b);
    const session = await hold(DOCKER, topo.client.v4b);
    assert.equal(await session.isAlive(), true);
    const since = daemon.events.length;
    const r = await run(process.execPath, [CLI, 'user', 'revoke', 'bob', '-c', dir.configPath]);
    assert.equal(r.code, 0, r.stderr);
    await daemon.waitFor((e) => e.event === 'grant.closed' && e['user'] === 'bob', 5000, since, 'grant.closed for bob');
    assert.equal(await connect(DOCKER, topo.client.v4b), false, 'new connections fail at once');
    assert.equal(await session.isAlive(), false, 'the forwarded session stopped');
  });

  test('sesame grant close cuts a forwarded connection too; the key stays valid and a new knock opens again', async () => {
    await knock('carol', [VM], LONG_SECONDS, topo.client.v4);
    const session = await hold(VM, topo.client.v4);
    assert.equal(await session.isAlive(), true);
    const r = await cli('grant', 'close', '--user', 'carol');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await connect(VM, topo.client.v4), false, 'closed');
    assert.equal(await session.isAlive(), false, 'the forwarded session was cut');
    await knock('carol', [VM], LONG_SECONDS, topo.client.v4);
    assert.equal(await connect(VM, topo.client.v4), true, 'a new knock opens again');
  });
});
