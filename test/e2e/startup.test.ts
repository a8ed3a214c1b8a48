// End to end: the daemon's first start on a host that tracked no connections freezes no session; loopback is never blocked; every start-up failure exits non-zero promptly with one line and leaves no process; a stopped or killed nft helper opens nothing and the daemon recovers; --check and --cleanup report like sshd -t.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { fingerprint } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { execIn } from '../../src/harness/netns.ts';
import { openHeldConnection, sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;
/** "Promptly": a start-up failure must end the process well within this, on a loaded machine too. */
const PROMPT_MS = 10_000;

describe('start-up and faults end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let alice: UserKeys;
  const listeners: { stop: () => Promise<void> }[] = [];

  const knock = (): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: PORT }] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom);
  const send = (): Promise<void> => sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, knock());
  const connect = (from?: string): Promise<boolean> => tcpConnect(topo.client.ns, topo.server.v4, PORT, 500, from);
  /** The CLI in the server namespace, as root; stderr and how long it took. */
  const cli = async (args: readonly string[], path?: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> => {
    const started = performance.now();
    // `env PATH=...` inside the namespace: only the CLI gets the changed PATH, not `ip` itself.
    const r = await execIn(topo.server.ns, [...(path === undefined ? [] : ['env', `PATH=${path}`]), process.execPath, CLI, ...args], { timeoutMs: 60_000 });
    return { ...r, ms: performance.now() - started };
  };
  /** Processes left in the server namespace besides the listeners (a hung daemon or an orphaned nft). */
  const leftovers = async (): Promise<string[]> => {
    const pids = (await execIn(topo.server.ns, ['ip', 'netns', 'pids', topo.server.ns])).stdout.split('\n').filter((p) => /^\d+$/.test(p));
    return pids.map((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' '); } catch { return ''; } }).filter((c) => /\bnft\b|cli\.js server/.test(c));
  };
  /** A start that must fail: exit code, one line on stderr (no stack), within PROMPT_MS, nothing left running. */
  const refusedStart = async (args: readonly string[], code: number, message: RegExp, path?: string): Promise<void> => {
    const r = await cli(['server', '-c', dir.configPath, ...args], path);
    assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /internal error|    at /);
    assert.ok(r.ms < PROMPT_MS, `exited after ${Math.round(r.ms)} ms`);
    assert.deepEqual(await leftovers(), [], 'no daemon or nft helper left behind');
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2estart');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`] });
    alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice) });
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT), await startTcpListener(topo.server.ns, '::', PORT));
  });

  after(async () => {
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('first start on a host with no firewall at all: an open session to the protected port keeps working; new ones need a knock', async () => {
    const tables = await execIn(topo.server.ns, ['nft', 'list', 'tables']);
    assert.equal(tables.stdout.trim(), '', 'a fresh namespace: no rules, so no connection tracking yet');
    const held = await openHeldConnection(topo.client.ns, topo.server.v4, PORT);
    const daemon = new Daemon(topo.server.ns, dir.configPath);
    try {
      assert.equal(await held.isAlive(), true, 'alive before the start');
      await daemon.event('server.started', 10_000);
      for (let i = 0; i < 5; i++) assert.equal(await held.isAlive(), true, `echo ${i} after the start`);
      assert.equal(await connect(), false, 'a new connection is refused without a knock');
      assert.equal(await connect(topo.client.v4b), false, 'from another address too');
      const since = daemon.events.length;
      await send();
      await daemon.event('grant.opened', 5000, since);
      assert.equal(await connect(), true, 'and opens with one');
    } finally {
      await held.close();
      await daemon.kill('SIGTERM');
    }
  });

  test('loopback connections to protected ports are never dropped', async () => {
    const daemon = new Daemon(topo.server.ns, dir.configPath);
    try {
      await daemon.event('server.started', 10_000);
      assert.equal(await tcpConnect(topo.server.ns, '127.0.0.1', PORT, 2000), true, '127.0.0.1');
      assert.equal(await tcpConnect(topo.server.ns, '::1', PORT, 2000), true, '::1');
      assert.equal(await connect(topo.client.v4b), false, 'while the network stays closed');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  test('an IPv6 datagram from an IPv4-mapped source is dropped (bad_source): it cannot pose as the IPv4 address', async () => {
    assert.equal((await cli(['grant', 'close', '--user', 'alice', '-c', dir.configPath])).code, 0);
    assert.equal(await connect(), false, 'no grant left from the tests before');
    const daemon = new Daemon(topo.server.ns, dir.configPath);
    try {
      await daemon.event('server.started', 10_000);
      const link = JSON.parse((await execIn(topo.server.ns, ['ip', '-j', 'link', 'show', 'veth-srv'])).stdout) as { address: string }[];
      const mac = link[0]?.address ?? assert.fail('the server veth has a MAC address');
      const since = daemon.events.length;
      const tool = new URL('../../../test/tools/send-raw6.py', import.meta.url).pathname;
      const sent = await execIn(topo.client.ns, ['python3', tool, 'veth-cli', mac, `::ffff:${topo.client.v4}`, topo.server.v6, String(KNOCK_PORT), Buffer.from(knock()).toString('hex')]);
      assert.equal(sent.code, 0, sent.stderr);
      const dropped = await daemon.dropped('bad_source', 5000, since);
      assert.equal(dropped['source'], undefined, 'no address is reported for it');
      await sleep(300);
      assert.ok(!daemon.events.slice(since).some((e) => e.event === 'knock.accepted' || e.event === 'grant.opened'), 'nothing accepted');
      assert.equal(await connect(), false, 'the IPv4 address it claimed did not get a grant');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  test('start-up failures exit at once with one line and leave nothing running', async () => {
    await refusedStart(['--capture', 'pcap', '--interface', 'any', '--interface', 'lo'], 2, /"any" cannot be combined with other interfaces/);
    await refusedStart(['--capture', 'pcap', '--interface', 'nosuch0'], 8, /cannot open interface "nosuch0": no such interface/);
    // The state directory is a file.
    const state = join(dir.dir, 'state');
    rmSync(state, { recursive: true, force: true });
    writeFileSync(state, 'not a directory');
    await refusedStart([], 9, /cannot use the state directory .*state for the replay record/);
    rmSync(state);
    // A replay segment that is a directory.
    mkdirSync(join(state, 'replay', 'replay-0000000000001.log'), { recursive: true });
    await refusedStart([], 9, /cannot use the state directory/);
    rmSync(state, { recursive: true });
    // No nft on PATH.
    await refusedStart([], 7, /cannot set up nftables table inet sesame: .*ENOENT.*is nftables installed/, '/nonexistent');
    // A users file others may write.
    chmodSync(dir.usersPath, 0o664);
    await refusedStart([], 3, /refusing users file .*users\.json: .*users\.json is writable by its group \(mode 0664\)/);
    chmodSync(dir.usersPath, 0o644);
    chmodSync(dir.dir, 0o777);
    await refusedStart([], 3, /refusing config file .* is writable by (its group|others)/);
    chmodSync(dir.dir, 0o700);
  });

  test('a symlinked server key is refused (O_NOFOLLOW), even one that points to a good key', async () => {
    const config = JSON.parse(readFileSync(dir.configPath, 'utf8')) as Record<string, unknown>;
    await execIn(topo.server.ns, ['ln', '-sf', join(dir.dir, 'server.key'), join(dir.dir, 'link.key')]);
    writeFileSync(dir.configPath, JSON.stringify({ ...config, serverKey: 'link.key' }));
    try {
      await refusedStart([], 4, /server private key .*link\.key is a symbolic link; refusing to follow it/);
    } finally {
      writeFileSync(dir.configPath, JSON.stringify(config));
    }
  });

  test('a stopped nft helper opens nothing and the daemon recovers; a killed one is replaced', async () => {
    const closed = await cli(['grant', 'close', '--user', 'alice', '-c', dir.configPath]);
    assert.equal(closed.code, 0, closed.stderr);
    assert.equal(await connect(), false, 'no grant left from the tests before');
    const daemon = new Daemon(topo.server.ns, dir.configPath);
    try {
      await daemon.event('server.started', 10_000);
      const helpers = (): number[] => {
        const pid = daemon.pid ?? 0;
        const kids = readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter((p) => p !== ''));
        return kids.filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'nft').map(Number);
      };
      const [nft] = helpers();
      assert.ok(nft !== undefined, 'the daemon keeps an nft helper');
      process.kill(nft, 'SIGSTOP');
      let since = daemon.events.length;
      await send();
      const failed = await daemon.event('grant.failed', 15_000, since);
      assert.match(String(failed['err']), /no acknowledgement/);
      assert.equal(await connect(), false, 'nothing opened while the helper was stuck');
      await sleep(500);
      since = daemon.events.length;
      await send();
      await daemon.event('grant.opened', 10_000, since);
      assert.equal(await connect(), true, 'a new helper serves the next knock');
      for (const pid of helpers()) process.kill(pid, 'SIGKILL');
      since = daemon.events.length;
      await sleep(200);
      await send();
      await daemon.event('grant.opened', 10_000, since);
      assert.ok(daemon.events.slice(since).every((e) => e.event !== 'server.stopped'), 'the daemon kept running');
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  test('--check is like sshd -t: the key fingerprint when all is well; every problem, and non-zero, when not', async () => {
    let r = await cli(['server', '-c', dir.configPath, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`server key ${fingerprint(dir.serverKeys.publicKey).replace(/[+/]/g, '\\$&')} `));
    dir.writeUsers({});
    r = await cli(['server', '-c', dir.configPath, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: no users in .*nobody can knock yet/);
    writeFileSync(dir.usersPath, JSON.stringify({ users: { a: { keys: [{ key: 'x' }], ports: [] }, b: { keys: [], ports: ['tcp/22'], wat: 1 } } }));
    chmodSync(dir.usersPath, 0o666);
    r = await cli(['server', '-c', dir.configPath, '--check']);
    assert.notEqual(r.code, 0);
    for (const expected of [/users\.json is writable by (its group|others)/, /\/users\/a\/ports: must NOT have fewer than 1 items/, /\/users\/b: unknown key "wat"/, /\d+ problems/]) assert.match(r.stderr, expected);
    r = await cli(['server', '-c', dir.configPath, '--check'], '/nonexistent');
    assert.match(r.stderr, /nftables cannot set up table inet sesame: .*is nftables installed/);
    chmodSync(dir.usersPath, 0o644);
    dir.writeUsers({ alice: userEntry(alice) });
  });

  test('--cleanup without nft is one clean line', async () => {
    const r = await cli(['server', '-c', dir.configPath, '--cleanup'], '/nonexistent');
    assert.equal(r.code, 7);
    assert.match(r.stderr, /^sesame: cannot remove nftables table inet sesame: .*is nftables installed/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
