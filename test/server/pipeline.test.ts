// The packet path in-process (pipeline.ts): real keys, knocks, users, rate limiter, replay store and drop log; a fake firewall (with the kernel's capacity limit) only where a fault is injected. Checks the order of steps and that every fault opens nothing.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { parseAddress } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import { staleWithToken } from '../helpers/knocks.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { ownerOf } from '../../src/server/firewall.ts';
import { RecordingFirewall } from '../helpers/firewall.ts';
import { deriveKeyId } from '../../src/protocol/keys.ts';
import { DropLog } from '../../src/server/log.ts';
import { handlePacket } from '../../src/server/pipeline.ts';
import type { PipelineDeps } from '../../src/server/pipeline.ts';
import { RateLimiter } from '../../src/server/ratelimit.ts';
import { ReplayStore } from '../../src/server/replay.ts';
import { parseUsers } from '../../src/server/users.ts';
import type { UserTable } from '../../src/server/users.ts';

/** No test here waits forever: a hang is a failure. */
const TEST_MS = 30_000;

type Line = Readonly<Record<string, unknown>>;

interface World {
  readonly deps: PipelineDeps;
  readonly firewall: RecordingFirewall;
  readonly lines: Line[];
  readonly drops: DropLog;
  /** What the users table is now (a test may swap it, as a reload does). */
  users: UserTable;
  /** How often the pipeline asked the daemon to bring the kernel in line (a grant that raced a revocation). */
  resyncs: number;
  readonly replay: ReplayStore;
  readonly dir: string;
  /** The fixed clock every part reads. */
  readonly nowMs: number;
  readonly source: Address;
  /** A fresh knock from alice for tcp/22, stamped with the world's clock unless told otherwise. */
  knock(timestampMs?: number, user?: UserKeys): Uint8Array;
  events(): string[];
}

const worlds: World[] = [];
let server: ServerKeys;
let alice: UserKeys;
let mallory: UserKeys;

before(async () => {
  await loadSodium();
  server = generateServerKeys();
  alice = generateUserKeys();
  mallory = generateUserKeys();
});
after(() => {
  for (const w of worlds) {
    w.replay.close();
    rmSync(w.dir, { recursive: true, force: true });
  }
});

/** alice with tcp/22, her key active or revoked. */
function aliceTable(revoked: boolean): UserTable {
  const key = { key: formatKeyLine(KEY_TYPE.userPublic, alice.publicKey, 'alice').trim() };
  const doc = revoked ? { users: { alice: { keys: [], ports: ['tcp/22'] } }, revoked: [{ ...key, user: 'alice', at: 'now' }] } : { users: { alice: { keys: [key], ports: ['tcp/22'] } } };
  return parseUsers(doc, 'pipeline-users.json');
}

function world(opts: { burst?: number; maxGrants?: number } = {}): World {
  const nowMs = Date.now();
  const now = (): number => nowMs;
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const users = aliceTable(false);
  const dir = mkdtempSync(join(tmpdir(), 'sesame-pipeline-'));
  const firewall = new RecordingFirewall(opts.maxGrants ?? 100);
  const drops = new DropLog(log, { perInterval: 1000, intervalMs: 10_000, now });
  const replay = new ReplayStore({ dir, windowMs: 30_000, maxEntries: 1000, now });
  const deps: PipelineDeps = {
    servers: () => [server],
    users: () => w.users,
    limiter: new RateLimiter({ perSecond: 1, burst: opts.burst ?? 100, maxSources: 100, now }),
    replay,
    firewall,
    bounds: { defaultDurationSeconds: 30, maxDurationSeconds: 300 },
    windowMs: 30_000,
    now,
    log,
    drops,
    resync: async () => {
      w.resyncs++;
    },
  };
  const source = parseAddress('192.0.2.10') ?? assert.fail('address');
  const w: World = {
    deps, firewall, lines, drops, users, resyncs: 0, replay, dir, nowMs, source,
    knock: (timestampMs = nowMs, user = alice) => buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, user, server.publicKey, timestampMs, systemRandom),
    events: () => lines.map((l) => String(l['event'])),
  };
  worlds.push(w);
  return w;
}

/** Waits (bounded) until the log holds `event`; the asynchronous step (replay durable, then firewall) ends with one. */
async function logged(w: World, event: string, count = 1): Promise<Line> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const hits = w.lines.filter((l) => l['event'] === event);
    if (hits.length >= count) return hits[count - 1] ?? assert.fail(event);
    if (performance.now() > deadline) assert.fail(`no ${count}x ${event} within 10 s; logged: ${w.events().join(', ')}`);
    await sleep(5);
  }
}

const dropReasons = (w: World): string[] => w.lines.filter((l) => l['event'] === 'knock.dropped').map((l) => String(l['reason']));
const totals = (w: World): Record<string, number> => Object.fromEntries(w.drops.totals);
/** pino's numeric levels. */
const LEVEL = { info: 30, warn: 40, error: 50 } as const;

test('a valid knock reaches the firewall owned by its key, logs knock.accepted then grant.opened', { timeout: TEST_MS }, async () => {
  const w = world();
  handlePacket(w.deps, w.knock(), w.source);
  const opened = await logged(w, 'grant.opened');
  assert.deepEqual(w.firewall.calls, [[{ address: w.source, access: { proto: 'tcp', port: 22 }, ttlSeconds: 30, owner: ownerOf(deriveKeyId(alice.publicKey)) }]]);
  assert.deepEqual(w.events(), ['knock.accepted', 'grant.opened']);
  assert.equal(w.lines[0]?.['user'], 'alice');
  assert.deepEqual(w.lines[0]?.['ports'], ['tcp/22']);
  assert.equal(opened['address'], '192.0.2.10');
  assert.equal(opened['port'], 'tcp/22');
  assert.equal(w.firewall.held.length, 1);
  assert.deepEqual(totals(w), {});
  assert.equal(w.resyncs, 0, 'an active key needs no second look');
});

test('the firewall refusing a grant: firewall_error counted, grant.failed logged as an error, nothing held', { timeout: TEST_MS }, async () => {
  const w = world();
  w.firewall.failWith = new Error('nft refused "add element inet sesame allow4 ...": Error: No such file or directory');
  handlePacket(w.deps, w.knock(), w.source);
  const failed = await logged(w, 'grant.failed');
  assert.equal(failed['level'], LEVEL.error);
  assert.equal(failed['user'], 'alice');
  assert.match(String(failed['err']), /No such file or directory/);
  assert.equal(w.firewall.calls.length, 1, 'the firewall was asked once');
  assert.deepEqual(totals(w), { [DROP.firewallError]: 1 });
  assert.deepEqual(dropReasons(w), [DROP.firewallError]);
  assert.ok(!w.events().includes('grant.opened'));
  assert.equal(w.firewall.held.length, 0);
});

test('the replay record cannot be made durable (disk full): replay_unavailable, replay.failed, and the firewall is never asked', { timeout: TEST_MS }, async () => {
  const w = world();
  // The store opens its first segment at the first commit, named from the clock: make that file /dev/full, so the write fails with ENOSPC for real.
  symlinkSync('/dev/full', join(w.dir, `replay-${String(w.nowMs).padStart(13, '0')}.log`));
  handlePacket(w.deps, w.knock(), w.source);
  const failed = await logged(w, 'replay.failed');
  assert.equal(failed['level'], LEVEL.error);
  assert.match(String(failed['err']), /ENOSPC/);
  await sleep(100); // a firewall call that wrongly followed the failure would land by now
  assert.deepEqual(w.firewall.calls, [], 'nothing opened without a durable replay record');
  assert.deepEqual(totals(w), { [DROP.replayUnavailable]: 1 });
  assert.ok(!w.events().includes('grant.opened'));
  assert.equal(w.firewall.held.length, 0);
});

test('full grant maps in the kernel: grant_book_full, grant.book_full at warn level, nothing more held', { timeout: TEST_MS }, async () => {
  const w = world({ maxGrants: 1 });
  handlePacket(w.deps, w.knock(), w.source);
  await logged(w, 'grant.opened');
  handlePacket(w.deps, w.knock(), w.source); // a fresh knock: the maps have no room for its grant
  const full = await logged(w, 'grant.book_full');
  assert.equal(full['level'], LEVEL.warn);
  assert.equal(full['user'], 'alice');
  assert.equal(w.firewall.held.length, 1);
  assert.deepEqual(totals(w), { [DROP.grantBookFull]: 1 });
  assert.equal(w.lines.filter((l) => l['event'] === 'grant.opened').length, 1);
});

test('a key revoked while its grant is in flight: the pipeline asks for a resync once the kernel has the grant', { timeout: TEST_MS }, async () => {
  const w = world();
  let release = (): void => {};
  w.firewall.gate = new Promise((resolve) => { release = resolve; });
  handlePacket(w.deps, w.knock(), w.source);
  await logged(w, 'knock.accepted');
  w.users = aliceTable(true); // the reload lands while nft works on the grant
  release();
  await logged(w, 'grant.opened');
  for (let i = 0; i < 100 && w.resyncs === 0; i++) await sleep(5);
  assert.equal(w.resyncs, 1, 'the grant a revocation could not see is closed by the resync');
  handlePacket(w.deps, w.knock(), w.source);
  assert.deepEqual(totals(w), { [DROP.revoked]: 1 });
});

test('step order: a byte-for-byte replay dies as replay before the rate limiter spends a token', { timeout: TEST_MS }, async () => {
  const w = world({ burst: 2 });
  const first = w.knock();
  handlePacket(w.deps, first, w.source); // token 1
  await logged(w, 'grant.opened');
  for (let i = 0; i < 5; i++) handlePacket(w.deps, first, w.source);
  assert.deepEqual(totals(w), { [DROP.replay]: 5 });
  handlePacket(w.deps, w.knock(), w.source); // token 2: still there, the replays spent none
  await logged(w, 'grant.opened', 2);
  handlePacket(w.deps, w.knock(), w.source); // no token left: the limiter is live
  assert.deepEqual(totals(w), { [DROP.replay]: 5, [DROP.rateLimited]: 1 });
  assert.equal(w.firewall.calls.length, 2);
});

test('step order: a packet with a wrong mac1 never reaches the rate limiter', { timeout: TEST_MS }, async () => {
  const w = world({ burst: 1 });
  const valid = w.knock();
  const junk = Uint8Array.from(valid);
  junk[junk.length - 1] = (junk[junk.length - 1] ?? 0) ^ 0x01; // mac1 is the packet's last bytes
  for (let i = 0; i < 50; i++) handlePacket(w.deps, junk, w.source);
  assert.deepEqual(totals(w), { [DROP.badMac]: 50 });
  handlePacket(w.deps, valid, w.source); // the only token
  await logged(w, 'grant.opened');
  handlePacket(w.deps, w.knock(), w.source);
  assert.deepEqual(totals(w), { [DROP.badMac]: 50, [DROP.rateLimited]: 1 }, 'the limiter is live: the valid knock took its only token');
});

test('step order: nothing is committed to the replay record before the signature and freshness checks pass', { timeout: TEST_MS }, async () => {
  const w = world();
  handlePacket(w.deps, w.knock(w.nowMs, mallory), w.source); // a key nobody authorized
  handlePacket(w.deps, w.knock(staleWithToken(w.nowMs)), w.source); // alice's, outside the ±30 s window but with a token still accepted
  assert.deepEqual(totals(w), { [DROP.unknownKey]: 1, [DROP.stale]: 1 });
  assert.equal(w.replay.size, 0, 'refused knocks leave no replay record');
  handlePacket(w.deps, w.knock(), w.source);
  await logged(w, 'grant.opened');
  assert.equal(w.replay.size, 1);
  assert.equal(w.firewall.calls.length, 1);
});

test('the replay directory gone (unwritable state): the knock is dropped, replay.failed names ENOENT, nothing opened, and handlePacket does not throw', { timeout: TEST_MS }, async () => {
  const w = world();
  rmSync(w.dir, { recursive: true, force: true });
  assert.doesNotThrow(() => handlePacket(w.deps, w.knock(), w.source));
  const failed = await logged(w, 'replay.failed');
  assert.equal(failed['level'], LEVEL.error);
  assert.match(String(failed['err']), /ENOENT/);
  await sleep(100);
  assert.deepEqual(w.firewall.calls, []);
  assert.equal(w.drops.totals.get(DROP.replayUnavailable), 1);
});

test('the disk back after a fault: the next knock is served, with no timer and no restart', { timeout: TEST_MS }, async () => {
  const w = world();
  rmSync(w.dir, { recursive: true, force: true });
  const refused = w.knock();
  handlePacket(w.deps, refused, w.source);
  await logged(w, 'replay.failed');
  mkdirSync(w.dir, { mode: 0o700 });
  handlePacket(w.deps, refused, w.source); // the very packet again: it was seen, so it stays refused in this process
  assert.deepEqual(totals(w), { [DROP.replayUnavailable]: 1, [DROP.replay]: 1 });
  handlePacket(w.deps, w.knock(), w.source);
  await logged(w, 'grant.opened');
  assert.equal(w.firewall.calls.length, 1, 'only the knock whose record is on disk reached the firewall');
  assert.equal(w.lines.filter((l) => l['event'] === 'replay.failed').length, 1);
});

test('confirmation: armed only after the grant is in the kernel, for the packet source and the named port; a port outside confirmPorts or a failed grant arms nothing', { timeout: TEST_MS }, async () => {
  const range = { first: 62202, last: 62217 };
  const knockNaming = (w: World, c: number): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: 22 }], confirmPort: c }, alice, server.publicKey, w.nowMs, systemRandom);
  const w = world();
  let release = (): void => {};
  w.firewall.gate = new Promise((resolve) => { release = resolve; });
  handlePacket({ ...w.deps, confirmPorts: range }, knockNaming(w, 62210), w.source);
  await logged(w, 'knock.accepted');
  await sleep(50);
  assert.deepEqual(w.firewall.confirms, [], 'nothing to confirm while the grant is not in the kernel');
  release();
  const armed = await logged(w, 'confirm.armed');
  assert.deepEqual(w.firewall.confirms, [{ address: w.source, port: 62210 }]);
  assert.deepEqual([armed['source'], armed['port']], ['192.0.2.10', 62210]);
  assert.deepEqual(w.events(), ['knock.accepted', 'grant.opened', 'confirm.armed']);

  const outside = world();
  handlePacket({ ...outside.deps, confirmPorts: range }, knockNaming(outside, 62218), outside.source);
  const refused = await logged(outside, 'confirm.out_of_range');
  assert.deepEqual([refused['port'], refused['range']], [62218, '62202-62217']);
  assert.equal(outside.firewall.held.length, 1, 'served, unconfirmed');
  assert.deepEqual(outside.firewall.confirms, []);

  const failing = world();
  failing.firewall.failWith = new Error('nft: No such file or directory');
  handlePacket({ ...failing.deps, confirmPorts: range }, knockNaming(failing, 62203), failing.source);
  await logged(failing, 'grant.failed');
  await sleep(50);
  assert.deepEqual(failing.firewall.confirms, [], 'no grant, no confirmation');
});

test('confirmation: a key revoked while its grant was in flight gets the resync and no confirmation', { timeout: TEST_MS }, async () => {
  const w = world();
  let release = (): void => {};
  w.firewall.gate = new Promise((resolve) => { release = resolve; });
  handlePacket({ ...w.deps, confirmPorts: { first: 62202, last: 62217 } }, buildKnock({ access: [{ proto: 'tcp', port: 22 }], confirmPort: 62204 }, alice, server.publicKey, w.nowMs, systemRandom), w.source);
  await logged(w, 'knock.accepted');
  w.users = aliceTable(true);
  release();
  await logged(w, 'grant.opened');
  for (let i = 0; i < 100 && w.resyncs === 0; i++) await sleep(5);
  assert.equal(w.resyncs, 1);
  await sleep(50);
  assert.deepEqual(w.firewall.confirms, []);
});
