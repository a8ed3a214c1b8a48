// End to end: the real daemon with its state directory on a small tmpfs that fills up (blocks, then inodes) or turns read-only under it. A valid knock is then dropped as replay_unavailable and opens nothing, the daemon lives on, and it serves again as soon as the disk does.
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode } from '../../src/errors.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn, run } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;

/** tmpfs mounted by this file and not yet unmounted: unmounted (lazily, if busy) on any exit. */
const mounted = new Set<string>();
let hooked = false;

async function mountTmpfs(options: string): Promise<string> {
  const mnt = join(mkdtempSync(join(tmpdir(), 'sesame-disk-')), 'state');
  mkdirSync(mnt);
  const r = await run('mount', ['-t', 'tmpfs', '-o', `${options},mode=0700`, 'tmpfs', mnt]);
  assert.equal(r.code, 0, `mount tmpfs: ${r.stderr}`);
  mounted.add(mnt);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => { for (const m of mounted) spawnSync('umount', ['-l', m]); });
  }
  return mnt;
}

/** Unmounts (lazily if something still holds it) and removes the temp dir around it, never its contents while mounted. */
async function unmount(mnt: string): Promise<void> {
  if ((await run('umount', [mnt])).code !== 0) await run('umount', ['-l', mnt]);
  if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `)) return;
  mounted.delete(mnt);
  rmSync(join(mnt, '..'), { recursive: true, force: true });
}

/** Writes or creates files in dir until the tmpfs says ENOSPC; returns their paths. */
function fill(dir: string, what: 'blocks' | 'inodes'): string[] {
  const made: string[] = [];
  const chunk = Buffer.alloc(4096, 0x5a);
  for (let i = 0; i < 10_000; i++) {
    const path = join(dir, `${what}-${i}`);
    try {
      const fd = openSync(path, 'w');
      made.push(path);
      try {
        if (what === 'blocks') for (;;) writeSync(fd, chunk);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if (errnoCode(err) === 'ENOSPC') return made;
      throw err;
    }
  }
  throw new Error(`${dir} never filled up`);
}

describe('disk faults under the real daemon', { skip }, () => {
  let topo: Topology;
  const listeners: { stop: () => Promise<void> }[] = [];

  /** One daemon with its own server dir, its state on its own tmpfs. */
  interface Stage {
    readonly mnt: string;
    readonly dir: ServerDir;
    readonly alice: UserKeys;
    daemon: Daemon;
  }
  const stages: Stage[] = [];

  const knock = (s: Stage): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: PORT }] }, s.alice, s.dir.serverKeys.publicKey, Date.now(), systemRandom);
  const send = (s: Stage, from = topo.client.v4): Promise<void> => sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, knock(s), from);
  const connect = (): Promise<boolean> => tcpConnect(topo.client.ns, topo.server.v4, PORT, 400);
  const elements = async (): Promise<string> => (await execIn(topo.server.ns, ['nft', 'list', 'table', 'inet', 'sesame'])).stdout;
  const running = async (d: Daemon): Promise<boolean> => Promise.race([d.exited.then(() => false), sleep(300).then(() => true)]);

  /** Runs a case on a fresh stage and tears it down whatever happens. */
  async function onStage(mountOptions: string, config: Record<string, unknown>, body: (s: Stage) => Promise<void>): Promise<void> {
    const s = await stage(mountOptions, config).catch(async (err: unknown) => {
      for (const left of [...stages]) await teardown(left);
      throw err;
    });
    try {
      await body(s);
    } finally {
      await teardown(s);
    }
  }

  async function stage(mountOptions: string, config: Record<string, unknown>): Promise<Stage> {
    const mnt = await mountTmpfs(mountOptions);
    const dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], stateDir: mnt, ...config });
    const alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice, { ports: [`tcp/${PORT}`] }) });
    const daemon = new Daemon(topo.server.ns, dir.configPath);
    const s: Stage = { mnt, dir, alice, daemon };
    stages.push(s);
    await daemon.event('server.started', 10_000);
    // `ip netns exec` gives the daemon its own mount namespace: it must see this very tmpfs there.
    const view = readFileSync(`/proc/${daemon.pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt);
    assert.match(view ?? 'not mounted', / - tmpfs /, `the daemon sees the tmpfs at ${mnt}`);
    return s;
  }

  /** Stops the daemon, removes its table (so no grant outlives the case) and the tmpfs. */
  async function teardown(s: Stage): Promise<void> {
    if (!stages.includes(s)) return;
    stages.splice(stages.indexOf(s), 1);
    await s.daemon.kill('SIGTERM').catch(() => {});
    await execIn(topo.server.ns, [process.execPath, CLI, 'server', '-c', s.dir.configPath, '--cleanup']);
    await unmount(s.mnt);
    s.dir.remove();
  }

  /** A valid knock now: dropped as replay_unavailable, replay.failed at error level naming errno; the daemon runs on, nothing opened. */
  async function refused(s: Stage, errno: string): Promise<void> {
    const since = s.daemon.events.length;
    await send(s);
    const failed = await s.daemon.event('replay.failed', 5000, since);
    assert.equal(failed['level'], 'error');
    assert.match(String(failed['err']), new RegExp(errno));
    await s.daemon.dropped('replay_unavailable', 5000, since);
    assert.equal(await running(s.daemon), true, 'the daemon still runs');
    assert.equal(await connect(), false, 'no access without a durable replay record');
    assert.ok(!s.daemon.events.slice(since).some((e) => e.event === 'grant.opened'));
    assert.doesNotMatch(await elements(), new RegExp(`${topo.client.v4.replaceAll('.', '\\.')} \\. tcp`));
  }

  /** The fault removed: the next knock opens the port, with no restart; returns that knock. */
  async function served(s: Stage): Promise<Uint8Array> {
    const since = s.daemon.events.length;
    const packet = knock(s);
    await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, packet);
    await s.daemon.event('grant.opened', 5000, since);
    assert.equal(await connect(), true, 'served again once the disk is');
    assert.equal(await running(s.daemon), true);
    return packet;
  }

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2edisk');
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
  });

  after(async () => {
    for (const s of [...stages]) await teardown(s).catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    for (const m of [...mounted]) await unmount(m);
  });

  test('tmpfs out of space (ENOSPC): replay_unavailable, nothing opened, the daemon lives; space freed, the next knock opens', async () => {
    await onStage('size=64k,nr_inodes=64', {}, async (s) => {
      const filler = fill(s.mnt, 'blocks');
      await refused(s, 'ENOSPC');
      for (const f of filler) rmSync(f);
      const packet = await served(s);
      // The segment the failed write cut back holds that knock whole: after kill -9 and a restart it is a replay.
      await s.daemon.kill('SIGKILL');
      s.daemon = new Daemon(topo.server.ns, s.dir.configPath);
      await s.daemon.event('server.started', 10_000);
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, packet, topo.client.v4b);
      await s.daemon.dropped('replay', 5000);
    });
  });

  test('tmpfs out of inodes (ENOSPC) when the segment rolls over: replay_unavailable, nothing opened; inodes freed, a new segment and the port opens', async () => {
    const windowMs = 1_000;
    await onStage('size=1m,nr_inodes=16', { freshnessWindowSeconds: windowMs / 1000 }, async (s) => {
      const replayDir = join(s.mnt, 'replay');
      const since = s.daemon.events.length;
      await send(s, topo.client.v4b); // the first segment, from another address: its grant does not open v4
      await s.daemon.event('grant.opened', 5000, since);
      assert.equal(readdirSync(replayDir).length, 1);
      const filler = fill(s.mnt, 'inodes');
      await sleep(windowMs + 100); // the next record needs a new segment, and so an inode
      await refused(s, 'ENOSPC');
      assert.equal(readdirSync(replayDir).length, 1, 'no segment could be made');
      for (const f of filler) rmSync(f);
      await served(s);
      assert.equal(readdirSync(replayDir).filter((n) => n.startsWith('replay-')).length, 2, 'the record went to a new segment');
    });
  });

  test('tmpfs remounted read-only (EROFS): replay_unavailable, nothing opened; remounted read-write, the next knock opens', async () => {
    // No knock before the remount: a segment open for writing would make the kernel refuse it (EBUSY).
    await onStage('size=256k,nr_inodes=64', {}, async (s) => {
      const ro = await run('mount', ['-o', 'remount,ro', s.mnt]);
      assert.equal(ro.code, 0, `remount ro: ${ro.stderr}`);
      await refused(s, 'EROFS');
      const rw = await run('mount', ['-o', 'remount,rw', s.mnt]);
      assert.equal(rw.code, 0, `remount rw: ${rw.stderr}`);
      await served(s);
    });
  });
});
