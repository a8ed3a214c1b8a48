// End to end: revocation closes access — grants opened before a restart, keys revoked while no daemon ran, grants in flight at the moment of revocation, and the sessions grants admitted — with the real daemon, CLI and nftables in namespaces.
import assert from 'node:assert/strict';
import { readTable } from '../../src/server/nft-read.ts';
import { mkdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { toHex } from '../../src/protocol/bytes.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { deriveKeyId, generateUserKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { validateUsersFile } from '../../src/server/users.ts';
import type { UsersFile } from '../../src/server/users.ts';
import { CLI, Daemon, makeServerDir } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn, run, spawnIn, stopChild } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { openHeldConnection, sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import type { HeldConnection } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;
/** Grants in these tests would outlive every test by far: only a revocation can close them in time. */
const LONG_SECONDS = 300;
/**
 * The bound: a revocation closes the grant, and stops the sessions it admitted, within a second. Counted from the
 * moment `sesame user revoke` has written the users file (its exit): its own start-up (node, libsodium, schema compilation)
 * is not the daemon's to promise, and takes seconds on a loaded machine. The figures printed count from its start.
 */
const WITHIN_MS = 1000;
const RACE_TRIALS = 24;
const SLOW_TRIALS = 12;
/** How long the slow nft holds each grant back: far longer than a reload's sync takes to list the kernel. */
const GRANT_DELAY_MS = 500;
const MEASURE_RUNS = 10;

/** A grant as `nft -j list map` shows it. */
interface Element {
  readonly address: string;
  readonly port: number;
  readonly keyId: string;
}

interface RaceResult {
  readonly delayMs: number;
  readonly how: 'sighup' | 'cli';
  readonly outcome: 'failed' | 'granted before' | 'granted after';
  /** users.reloaded events from the knock on. */
  readonly reloads: number;
  /** Elements of the revoked key still in the map after the trial settled. */
  readonly left: number;
  readonly connected: boolean;
  readonly closedLogged: boolean;
}

/** Sends each hex line from stdin as one UDP datagram from a fixed local address: a knock is on the wire within a millisecond of the write. */
const SENDER = `const dgram = require('node:dgram'); const readline = require('node:readline'); const [host, port, from] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.bind({ address: from, port: 0 }, () => { console.log('ready'); readline.createInterface({ input: process.stdin }).on('line', (hex) => s.send(Buffer.from(hex, 'hex'), Number(port), host)); });`;

/** An nft that passes everything through to the real one (argv: REAL_NFT DELAY_MS ARGS...), holding each grant line (an element with a timeout) back DELAY_MS, in order. */
const SLOW_NFT = `const { spawn } = require('node:child_process'); const readline = require('node:readline');
const [real, delayMs, ...args] = process.argv.slice(2);
const nft = spawn(real, args, { stdio: ['pipe', 'inherit', 'inherit'] });
nft.on('exit', (code) => process.exit(code ?? 1)); nft.stdin.on('error', () => {});
let queue = Promise.resolve();
readline.createInterface({ input: process.stdin })
  .on('line', (line) => { queue = queue.then(() => new Promise((r) => setTimeout(r, / timeout \\d+s comment /.test(line) ? Number(delayMs) : 0))).then(() => { nft.stdin.write(line + '\\n'); }); })
  .on('close', () => { void queue.then(() => nft.stdin.end()); });`;

const keyIdOf = (u: UserKeys): string => toHex(deriveKeyId(u.publicKey));
const keyLine = (u: UserKeys, name: string): string => formatKeyLine(KEY_TYPE.userPublic, u.publicKey, name).trim();
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const round = (ms: number): number => Math.round(ms);

/** The elements of the grant maps in nft's JSON, read by the daemon's own reader (src/server/nft-read.ts). */
const parseElements = (json: string): Element[] => readTable(json).grants.map((g) => ({ address: g.address.text, port: g.access.port, keyId: g.owner.keyIdHex }));

describe('revocation closes access end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  /** Opened before sesame's table existed, through no grant: no revocation may touch it. */
  let preexisting: HeldConnection;
  /** A long-lived knock sender from the client's second address (SENDER). */
  let sender: ReturnType<typeof spawnIn>;
  const listeners: { stop: () => Promise<void> }[] = [];
  const held: HeldConnection[] = [];

  const start = async (): Promise<Daemon> => {
    const d = new Daemon(topo.server.ns, dir.configPath);
    await d.event('server.started', 10_000);
    return d;
  };
  const knockPacket = (u: UserKeys): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: PORT }], durationSeconds: LONG_SECONDS }, u, dir.serverKeys.publicKey, Date.now(), systemRandom);
  const knock = (u: UserKeys, from: string): Promise<void> => sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, knockPacket(u), from);
  const connect = (from: string): Promise<boolean> => tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, from);
  const hold = async (from: string): Promise<HeldConnection> => {
    const h = await openHeldConnection(topo.client.ns, topo.server.v4, PORT, from);
    held.push(h);
    return h;
  };
  /** The real CLI, run on the host as an admin would: it only edits the users file. Never rejects. */
  const cliRun = (...args: string[]): Promise<ExecResult> => run(process.execPath, [CLI, ...args, '-c', dir.configPath]);
  const cli = async (...args: string[]): Promise<string> => {
    const r = await cliRun(...args);
    assert.equal(r.code, 0, `sesame ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const elements = async (): Promise<Element[]> => {
    const r = await execIn(topo.server.ns, ['nft', '-j', 'list', 'map', 'inet', 'sesame', 'allow4']);
    assert.equal(r.code, 0, r.stderr);
    return parseElements(r.stdout);
  };
  const owned = async (u: UserKeys): Promise<Element[]> => (await elements()).filter((e) => e.keyId === keyIdOf(u));
  /** Milliseconds from t0 until no element of u's key is left (polled every ~20 ms), or Infinity after 15 s. */
  const goneSince = async (u: UserKeys, t0: number): Promise<number> => {
    while (performance.now() - t0 < 15_000) {
      if ((await owned(u)).length === 0) return performance.now() - t0;
      await sleep(20);
    }
    return Infinity;
  };
  const readUsers = (): UsersFile => validateUsersFile(JSON.parse(readFileSync(dir.usersPath, 'utf8')), dir.usersPath);
  const writeUsers = (doc: UsersFile): void => dir.writeUsers(doc.users, doc.revoked);
  /** The tightest revocation: the file replaced (the directory watch will reload it too, 10 ms later) and SIGHUP at once. */
  const writeUsersAndHup = (doc: UsersFile): void => {
    writeUsers(doc);
    process.kill(daemon.pid ?? assert.fail('no daemon pid'), 'SIGHUP');
  };
  /** Gives user name exactly this one active key (the file written directly), once the daemon has loaded it. */
  const addUser = async (name: string, u: UserKeys): Promise<void> => {
    const since = daemon.events.length;
    const doc = readUsers();
    doc.users[name] = { keys: [{ key: keyLine(u, name) }], ports: [`tcp/${PORT}`] };
    writeUsers(doc);
    await daemon.waitFor((e) => e.event === 'key.added' && e['keyId'] === keyIdOf(u), 3000, since, `key.added for ${name}`);
  };
  const grantFor = async (name: string, u: UserKeys, from: string): Promise<void> => {
    const since = daemon.events.length;
    await knock(u, from);
    await daemon.waitFor((e) => e.event === 'grant.opened' && e['user'] === name && e['address'] === from, 3000, since, `grant.opened for ${name}`);
  };
  /** Runs `sesame user revoke NAME` and times, from the CLI's start, its exit and the moment the key's last element is gone. */
  const revokeTimed = async (name: string, u: UserKeys, ...extra: string[]): Promise<{ goneMs: number; cliMs: number }> => {
    const t0 = performance.now();
    const revoking = cliRun('user', 'revoke', name, ...extra).then((r) => ({ r, cliMs: performance.now() - t0 }));
    const goneMs = await goneSince(u, t0);
    const { r, cliMs } = await revoking;
    assert.equal(r.code, 0, r.stderr);
    return { goneMs, cliMs };
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2erev');
    // Another tool's table that tracks connections, as on a host with a stateful firewall: conntrack follows the connection opened below before sesame's table exists.
    const other = await execIn(topo.server.ns, ['nft', '-f', '-'], { input: 'table inet othertool {\n  chain input { type filter hook input priority 0; policy accept; ct state established accept; }\n}\n' });
    assert.equal(other.code, 0, other.stderr);
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], maxDurationSeconds: LONG_SECONDS });
    listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
    assert.doesNotMatch((await execIn(topo.server.ns, ['nft', 'list', 'tables'])).stdout, /inet sesame/);
    preexisting = await hold(topo.client.v4);
    daemon = await start();
    sender = spawnIn(topo.client.ns, [process.execPath, '-e', SENDER, topo.server.v4, String(KNOCK_PORT), topo.client.v4b]);
    await new Promise((resolve, reject) => {
      sender.stdout.once('data', resolve);
      sender.once('exit', (code) => reject(new Error(`the knock sender exited (${code})`)));
    });
  });

  after(async () => {
    if (sender !== undefined) await stopChild(sender);
    for (const h of held) await h.close().catch(() => {});
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  for (const [signal, name] of [['SIGTERM', 'alice'], ['SIGKILL', 'amy']] as const) {
    test(`a grant opened before a restart (${signal}) is gone within 1 s of sesame user revoke; new connections fail, its session stops`, async () => {
      const u = generateUserKeys();
      await addUser(name, u);
      await grantFor(name, u, topo.client.v4b);
      const session = await hold(topo.client.v4b);
      await daemon.kill(signal);
      daemon = await start();
      assert.equal((await owned(u)).length, 1, 'the grant outlived the restart');
      assert.equal(await connect(topo.client.v4b), true);
      const { goneMs, cliMs } = await revokeTimed(name, u);
      assert.ok(goneMs - cliMs <= WITHIN_MS, `element gone ${round(goneMs - cliMs)} ms after sesame user revoke wrote the file`);
      assert.equal(await connect(topo.client.v4b), false, 'new connections fail now, not at the grant timeout');
      assert.equal(await session.isAlive(), false, 'the session the grant admitted stopped');
    });
  }

  test('a key revoked while the daemon is stopped: its grant closes and its session stops when the daemon starts', async () => {
    const u = generateUserKeys();
    await addUser('bea', u);
    await grantFor('bea', u, topo.client.v4b);
    const session = await hold(topo.client.v4b);
    await daemon.kill('SIGTERM');
    await cli('user', 'revoke', 'bea', '--reason', 'revoked while stopped');
    assert.equal((await owned(u)).length, 1, 'nothing closes the grant while no daemon runs (else this test proves nothing)');
    assert.equal(await session.isAlive(), true);
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
    const startedAt = performance.now();
    const closed = await daemon.waitFor((e) => e.event === 'grant.closed' && e['keyId'] === keyIdOf(u), WITHIN_MS, 0, 'grant.closed for bea');
    assert.deepEqual([closed['user'], closed['address'], closed['port'], closed['why']], ['bea', topo.client.v4b, `tcp/${PORT}`, 'revoked']);
    const goneMs = await goneSince(u, startedAt);
    assert.ok(goneMs <= WITHIN_MS, `element still there ${round(goneMs)} ms after server.started`);
    assert.equal(await connect(topo.client.v4b), false);
    assert.equal(await session.isAlive(), false, 'the session the revoked key admitted stopped at start');
  });

  /**
   * One race trial: a fresh key for user racer, a knock with a long grant, and the key's revocation delayMs after the daemon
   * logged knock.accepted: the users file written directly and SIGHUP (a few ms), or `sesame user revoke`. Then 1 s to settle.
   */
  const raceTrial = async (delayMs: number, how: 'sighup' | 'cli', write = writeUsersAndHup): Promise<RaceResult> => {
    const u = generateUserKeys();
    const id = keyIdOf(u);
    let since = daemon.events.length;
    const doc = readUsers();
    doc.users['racer'] = { keys: [{ key: keyLine(u, 'racer') }], ports: [`tcp/${PORT}`] };
    write(doc);
    await daemon.waitFor((e) => e.event === 'key.added' && e['keyId'] === id, 3000, since, 'key.added');
    // That reload's own sync with the kernel finishes first: the revocation's sync must not queue behind it.
    await sleep(400);
    // The revoked document is ready before the knock, so the revocation lands as soon after it as it can.
    (doc.revoked ??= []).push({ key: keyLine(u, 'racer'), user: 'racer', at: new Date().toISOString(), reason: 'race' });
    doc.users['racer'] = { keys: [], ports: [`tcp/${PORT}`] };
    since = daemon.events.length;
    sender.stdin.write(`${Buffer.from(knockPacket(u)).toString('hex')}\n`);
    await daemon.waitFor((e) => e.event === 'knock.accepted' && e['keyId'] === id, 3000, since, 'knock.accepted');
    if (delayMs > 0) await sleep(delayMs);
    if (how === 'cli') {
      await cli('user', 'revoke', 'racer');
    } else {
      write(doc);
    }
    await daemon.waitFor((e) => e.event === 'user.revoked' && e['keyId'] === id, 3000, since, 'user.revoked');
    // The knock was accepted: its grant lands (or fails) whatever happened since; settle after that.
    await daemon.waitFor((e) => (e.event === 'grant.opened' || e.event === 'grant.failed') && e['user'] === 'racer', 5000, since, 'grant.opened');
    await sleep(1000);
    const events = daemon.events.slice(since);
    const opened = events.findIndex((e) => e.event === 'grant.opened' && e['user'] === 'racer');
    const revoked = events.findIndex((e) => e.event === 'user.revoked' && e['keyId'] === id);
    const outcome = opened < 0 ? 'failed' : opened < revoked ? 'granted before' : 'granted after';
    const closedLogged = opened < 0 || events.some((e) => e.event === 'grant.closed' && e['keyId'] === id && e['why'] === 'revoked');
    const reloads = events.filter((e) => e.event === 'users.reloaded').length;
    return { delayMs, how, outcome, reloads, left: (await owned(u)).length, connected: await connect(topo.client.v4b), closedLogged };
  };
  const raceReport = (what: string, results: readonly RaceResult[]): void => {
    const count = (outcome: string): number => results.filter((r) => r.outcome === outcome).length;
    const bad = results.filter((r) => r.outcome === 'failed' || r.left > 0 || r.connected || !r.closedLogged);
    console.log(`race harness (${what}): ${results.length} trials, ${bad.length} left open; grant logged before the revoking reload ${count('granted before')}, after it (in flight) ${count('granted after')}`);
    assert.deepEqual(bad, [], 'every grant of a revoked key is closed (and logged as closed), and no new connection gets through');
  };

  test(`race: a key revoked 0-5 ms after its knock was accepted leaves no grant open (${RACE_TRIALS} trials)`, { timeout: 300_000 }, async () => {
    const results: RaceResult[] = [];
    for (let trial = 0; trial < RACE_TRIALS; trial++) {
      // Mostly a direct write and SIGHUP (a few ms); the CLI takes hundreds of ms to start, so fewer of those.
      results.push(await raceTrial(trial % 6, trial < RACE_TRIALS - 6 ? 'sighup' : 'cli'));
    }
    raceReport('file + SIGHUP or CLI, 0-5 ms after knock.accepted', results);
  });

  test(`race, slow grant: a grant that lands after the revoking reload has synced is closed too (${SLOW_TRIALS} trials)`, { timeout: 300_000 }, async () => {
    // On an idle machine a grant lands before the reload's sync lists the kernel, and the directory watch adds a second
    // reload after it: the daemon's own check after each grant is never what closes it. Here nft holds grant lines back,
    // and the users file sits behind a symlink whose target the watch does not see, so SIGHUP's reload is the only one.
    const bin = join(dir.dir, 'slow-nft');
    mkdirSync(bin);
    const realNft = (await run('sh', ['-c', 'command -v nft'])).stdout.trim();
    assert.ok(realNft.startsWith('/'), 'nft on PATH');
    writeFileSync(join(bin, 'slow-nft.js'), SLOW_NFT);
    // Only the daemon's long-lived `nft -i` (grants, closes) goes through the slow pass-through; listings run nft itself, at full speed.
    const script = `#!/bin/sh\ncase " $* " in *" -i "*) exec '${process.execPath}' '${join(bin, 'slow-nft.js')}' '${realNft}' ${GRANT_DELAY_MS} "$@";; esac\nexec '${realNft}' "$@"\n`;
    writeFileSync(join(bin, 'nft'), script, { mode: 0o755 });
    const realPath = join(dir.dir, 'real', 'users.json');
    const writeReal = (doc: UsersFile): void => {
      writeFileSync(`${realPath}.tmp`, JSON.stringify(doc));
      renameSync(`${realPath}.tmp`, realPath);
      process.kill(daemon.pid ?? assert.fail('no daemon pid'), 'SIGHUP');
    };
    await daemon.kill('SIGTERM');
    mkdirSync(join(dir.dir, 'real'));
    renameSync(dir.usersPath, realPath);
    symlinkSync(realPath, dir.usersPath);
    daemon = new Daemon(topo.server.ns, dir.configPath, [], ['env', `PATH=${bin}:${process.env['PATH'] ?? ''}`]);
    const results: RaceResult[] = [];
    try {
      await daemon.event('server.started', 10_000);
      for (let trial = 0; trial < SLOW_TRIALS; trial++) results.push(await raceTrial(trial % 6, 'sighup', writeReal));
    } finally {
      await daemon.kill('SIGTERM');
      unlinkSync(dir.usersPath);
      renameSync(realPath, dir.usersPath);
      daemon = await start();
    }
    raceReport(`grants held back ${GRANT_DELAY_MS} ms by nft, SIGHUP the only reload, 0-5 ms after knock.accepted`, results);
    const reloads = results.map((r) => r.reloads);
    assert.deepEqual(results.map((r) => r.outcome), results.map(() => 'granted after'), 'every grant landed after the reload that revoked its key');
    assert.deepEqual(reloads, reloads.map(() => 1), 'one reload per revocation');
  });

  test('revoking a key stops the sessions its grants admitted within 1 s, and only those', async () => {
    const carol = generateUserKeys();
    const bob = generateUserKeys();
    await addUser('carol', carol);
    await addUser('bob', bob);
    await grantFor('carol', carol, topo.client.v4);
    const carols = await hold(topo.client.v4);
    // One element per address and port: bob's knock from the same address makes it his.
    await grantFor('bob', bob, topo.client.v4);
    assert.deepEqual((await elements()).filter((e) => e.address === topo.client.v4).map((e) => e.keyId), [keyIdOf(bob)]);
    const bobs = await hold(topo.client.v4);
    for (const [h, whose] of [[carols, 'carol'], [bobs, 'bob'], [preexisting, 'pre-existing']] as const) assert.equal(await h.isAlive(), true, `${whose}'s connection works before`);

    const since = daemon.events.length;
    const t0 = performance.now();
    const revoking = cliRun('user', 'revoke', 'carol').then((r) => ({ r, cliMs: performance.now() - t0 }));
    let deadMs = Infinity;
    let lastEchoMs = 0;
    while (performance.now() - t0 < 15_000) {
      const sentMs = performance.now() - t0;
      if (!(await carols.isAlive(300))) {
        deadMs = sentMs;
        break;
      }
      lastEchoMs = sentMs;
      await sleep(10);
    }
    const { r, cliMs } = await revoking;
    assert.equal(r.code, 0, r.stderr);
    console.log(`revoke → session dead: ${round(deadMs)} ms from the CLI's start (the first probe without an echo was sent then, the last echoed one at ${round(lastEchoMs)} ms; the CLI exited at ${round(cliMs)} ms)`);
    assert.ok(lastEchoMs - cliMs <= WITHIN_MS && deadMs < Infinity, `carol's session still passed traffic ${round(lastEchoMs - cliMs)} ms after sesame user revoke wrote the file`);
    await daemon.waitFor((e) => e.event === 'user.revoked' && e['keyId'] === keyIdOf(carol), 3000, since, 'user.revoked');
    assert.equal(await carols.isAlive(), false, 'and it stays stopped');
    assert.equal(await bobs.isAlive(), true, "bob's connection from the same address keeps working");
    assert.equal(await preexisting.isAlive(), true, 'a connection older than the daemon keeps working');
    assert.equal(await connect(topo.client.v4), true, "bob's grant for the same address and port stays open");
  });

  test('--keep-sessions: the grant closes within 1 s, the established session keeps working', async () => {
    const kate = generateUserKeys();
    await addUser('kate', kate);
    await grantFor('kate', kate, topo.client.v4b);
    const session = await hold(topo.client.v4b);
    const since = daemon.events.length;
    const { goneMs, cliMs } = await revokeTimed('kate', kate, '--keep-sessions');
    assert.ok(goneMs - cliMs <= WITHIN_MS, `element gone ${round(goneMs - cliMs)} ms after sesame user revoke wrote the file`);
    const revoked = await daemon.waitFor((e) => e.event === 'key.revoked' && e['keyId'] === keyIdOf(kate), 3000, since, 'key.revoked');
    assert.equal(revoked['keepSessions'], true);
    assert.equal(await connect(topo.client.v4b), false, 'no new connections');
    assert.equal(await session.isAlive(), true, 'the established session keeps working');
    // Nor does a later reload or restart cut it.
    const reloaded = daemon.events.length;
    process.kill(daemon.pid ?? assert.fail('no daemon pid'), 'SIGHUP');
    await daemon.event('users.reloaded', 3000, reloaded);
    await daemon.kill('SIGTERM');
    daemon = await start();
    assert.equal(await session.isAlive(), true, 'still working after a reload and a restart');
  });

  test(`revoke → grant gone, measured (median of ${MEASURE_RUNS})`, async () => {
    const times: number[] = [];
    const cliTimes: number[] = [];
    for (let i = 0; i < MEASURE_RUNS; i++) {
      const u = generateUserKeys();
      await addUser('meas', u);
      await grantFor('meas', u, topo.client.v4b);
      await sleep(300); // the daemon is idle when the revocation starts
      const { goneMs, cliMs } = await revokeTimed('meas', u);
      times.push(goneMs);
      cliTimes.push(cliMs);
    }
    const sorted = [...times].sort((a, b) => a - b);
    console.log(`revoke → grant gone: median ${round(median(times))} ms over ${times.length} runs (min ${round(sorted[0] ?? NaN)}, max ${round(sorted.at(-1) ?? NaN)}), from the CLI's start, polled every ~20 ms; the CLI itself exits after a median ${round(median(cliTimes))} ms`);
    const afterWrite = times.map((ms, i) => ms - (cliTimes[i] ?? 0));
    assert.ok(afterWrite.every((ms) => ms <= WITHIN_MS), `every run within 1 s of the file's change: ${afterWrite.map(round).join(', ')} ms`);
  });
});
