// Replay record: check-and-commit, persistence across restarts (including torn writes), the on-disk formats, a window changed across a restart, pruning, the cap, and disk faults (gone, full, short writes) that must never report a record durable that is not.
import assert from 'node:assert/strict';
import fs, { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, mock, test } from 'node:test';
import { ReplayStore } from '../../src/server/replay.ts';
import type { ReplayOptions } from '../../src/server/replay.ts';
import { CEILING } from '../../src/limits.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import type { Result } from '../../src/protocol/reasons.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'sesame-replay-'));
  dirs.push(d);
  return d;
};
before(async () => { await loadSodium(); });
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const digest = (n: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (n >> (i % 4)) & 0xff ^ i);
const mac = (n: number): Uint8Array => new Uint8Array(16).fill(n);
const verdict = (r: Result<true>): string => (r.ok ? 'ok' : r.reason);
const segments = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith('replay-')).sort();
const segmentName = (ms: number): string => `replay-${String(ms).padStart(13, '0')}.log`;
const MAGIC = Buffer.from('sesame/replay/v2');
const store = (dir: string, now: () => number, opts: Partial<ReplayOptions> = {}): ReplayStore => new ReplayStore({ dir, windowMs: 30_000, maxEntries: 100, now, ...opts });

/** fs.writeSync replaced for the store (its named import follows the builtin's exports once synced); restored by the returned function. */
function replaceWriteSync(fake: (fd: number, bytes: Uint8Array, offset: number, length: number) => number): () => void {
  mock.method(fs, 'writeSync', fake);
  syncBuiltinESMExports();
  return () => {
    mock.restoreAll();
    syncBuiltinESMExports();
  };
}
const realWriteSync = fs.writeSync;

test('a digest is accepted once; its packet mac is remembered', async () => {
  const now = 1_000_000;
  const s = store(tempDir(), () => now);
  assert.ok(s.checkAndCommit(digest(1), mac(7), now).ok);
  assert.equal(verdict(s.checkAndCommit(digest(1), mac(0), now)), DROP.replay);
  assert.ok(s.seenPacket(mac(7)));
  assert.ok(!s.seenPacket(mac(8)));
  await s.durable();
  s.close();
});

test('accepted digests survive a restart, even without close() (kill -9), and a torn last record is ignored', async () => {
  const dir = tempDir();
  const now = 1_000_000;
  const first = store(dir, () => now);
  assert.ok(first.checkAndCommit(digest(1), mac(0), now).ok);
  assert.ok(first.checkAndCommit(digest(2), mac(1), now).ok);
  await first.durable(); // the pipeline awaits this before opening the firewall
  const [segment] = segments(dir);
  assert.ok(segment);
  appendFileSync(join(dir, segment), Buffer.alloc(10, 0xff)); // a crash in the middle of the next record
  const second = store(dir, () => now + 1000);
  for (const n of [1, 2]) assert.equal(verdict(second.checkAndCommit(digest(n), mac(0), now)), DROP.replay, `digest ${n} after restart`);
  assert.ok(second.checkAndCommit(digest(3), mac(0), now).ok);
  second.close();
});

test('on disk a segment is the magic "sesame/replay/v2", then records of digest | the knock timestamp (ms, 64-bit big-endian)', async () => {
  const dir = tempDir();
  const now = 1_000_000;
  const s = store(dir, () => now);
  assert.ok(s.checkAndCommit(digest(1), mac(1), now - 2_000).ok);
  assert.ok(s.checkAndCommit(digest(2), mac(2), now + 3_000).ok);
  await s.durable();
  s.close();
  assert.deepEqual(segments(dir), [segmentName(now)]);
  const data = readFileSync(join(dir, segmentName(now)));
  assert.equal(data.length, 16 + 2 * 24);
  assert.deepEqual(data.subarray(0, 16), MAGIC);
  assert.deepEqual(data.subarray(16, 32), Buffer.from(digest(1)));
  assert.equal(data.readBigUInt64BE(32), BigInt(now - 2_000), 'the timestamp, not an expiry computed with the window of the day');
  assert.deepEqual(data.subarray(40, 56), Buffer.from(digest(2)));
  assert.equal(data.readBigUInt64BE(56), BigInt(now + 3_000));
});

test('a restart with a larger window still refuses a knock seen before; with a smaller one it keeps it for the new window', async () => {
  const dir = tempDir();
  const t = 1_000_000;
  const narrow = store(dir, () => t, { windowMs: 1_000 });
  assert.ok(narrow.checkAndCommit(digest(1), mac(1), t).ok);
  await narrow.durable();
  narrow.close();
  // Five seconds later, freshnessWindowSeconds raised to 30: the knock is fresh again, so its record must still hold.
  const wide = store(dir, () => t + 5_000, { windowMs: 30_000 });
  assert.equal(verdict(wide.checkAndCommit(digest(1), mac(0), t)), DROP.replay);
  wide.close();
  const cases: [string, number, number, string][] = [
    // [case, window at restart, restart time, verdict]
    ['window 10 s, 9 s later: fresh under the new window, refused', 10_000, t + 9_000, DROP.replay],
    ['window 10 s, 10 s later: the window edge is still fresh, refused', 10_000, t + 10_000, DROP.replay],
    ['window 10 s, 10.001 s later: stale, the record is gone from memory', 10_000, t + 10_001, 'ok'],
  ];
  for (const [name, windowMs, at, expected] of cases) {
    const copy = tempDir();
    for (const n of segments(dir)) writeFileSync(join(copy, n), readFileSync(join(dir, n)));
    const s = store(copy, () => at, { windowMs });
    assert.equal(verdict(s.checkAndCommit(digest(1), mac(0), t)), expected, name);
    s.close();
  }
});

test('version 1 segments (digest | expiry, no magic) are still read: the expiry bounds the timestamp; a torn record is ignored', async () => {
  const dir = tempDir();
  const t = 1_000_000;
  const v1 = (d: Uint8Array, expiresMs: number): Buffer => {
    const b = Buffer.alloc(24);
    b.set(d);
    b.writeBigUInt64BE(BigInt(expiresMs), 16);
    return b;
  };
  // Written by the old daemon with a 1 s window: knock 1 at t (expiry t + 1 s), knock 2 long ago; then a torn record.
  writeFileSync(join(dir, segmentName(t - 60_000)), Buffer.concat([v1(digest(2), t - 59_000), v1(digest(1), t + 1_000), Buffer.alloc(11, 0xee)]));
  const s = store(dir, () => t + 20_000, { windowMs: 30_000 });
  assert.equal(s.size, 1);
  assert.equal(verdict(s.checkAndCommit(digest(1), mac(0), t)), DROP.replay, 'fresh under the new 30 s window: refused');
  assert.ok(s.checkAndCommit(digest(2), mac(2), t).ok, 'outside even the new window: forgotten');
  await s.durable();
  s.close();
  assert.equal(segments(dir).length, 2, 'the old segment is kept (CEILING) beside the new one');
});

test('entries leave memory with the window; a segment file stays until its newest knock + CEILING.freshnessWindowMs', async () => {
  const dir = tempDir();
  let now = 1_000_000;
  const s = store(dir, () => now, { windowMs: 1_000 });
  for (let i = 0; i < 10; i++) assert.ok(s.checkAndCommit(digest(i), mac(i), now).ok);
  await s.durable();
  assert.equal(s.size, 10);
  now += 5_000;
  assert.ok(s.checkAndCommit(digest(100), mac(100), now).ok);
  await s.durable();
  assert.equal(s.size, 1, 'expired entries pruned from memory');
  assert.equal(segments(dir).length, 2, 'the first segment is kept: a config with a larger window may load it');
  now += CEILING.freshnessWindowMs - 4_000; // the first segment's knocks are now older than any window
  assert.ok(s.checkAndCommit(digest(101), mac(101), now).ok);
  await s.durable();
  assert.deepEqual(segments(dir), [segmentName(1_005_000), segmentName(now)], 'only the first segment is gone');
  s.close();
});

test('when full, new knocks are refused rather than old ones forgotten', () => {
  const now = 1_000_000;
  const s = store(tempDir(), () => now, { maxEntries: 16 });
  for (let i = 0; i < 16; i++) assert.ok(s.checkAndCommit(digest(i), mac(i), now).ok);
  assert.equal(verdict(s.checkAndCommit(digest(99), mac(99), now)), DROP.replayFull);
  assert.equal(verdict(s.checkAndCommit(digest(0), mac(0), now)), DROP.replay, 'earlier knocks still refused');
  s.close();
});

/** Disk faults: [case, make the fault, the errno durable() reports, remove the fault]; the fault comes at 1_000_000 ms. */
const FAULTS: [string, (dir: string) => void, RegExp, (dir: string) => void][] = [
  ['the directory removed', (dir) => rmSync(dir, { recursive: true }), /ENOENT/, (dir) => mkdirSync(dir)],
  // The failed segment is left behind and the next write takes a new one; the link goes before a restart reads it (/dev/full reads as endless zeros).
  ['the segment is /dev/full (disk full)', (dir) => symlinkSync('/dev/full', join(dir, segmentName(1_000_000))), /ENOSPC/, (dir) => rmSync(join(dir, segmentName(1_000_000)))],
  ['the open segment deleted with its directory', (dir) => rmSync(dir, { recursive: true }), /ENOENT/, (dir) => mkdirSync(dir)],
];

for (const [name, fault, errno, repair] of FAULTS) {
  test(`disk fault, ${name}: checkAndCommit does not throw, durable() rejects with the errno, and the next commit after the repair is durable`, async () => {
    const dir = tempDir();
    let now = 1_000_000;
    const s = store(dir, () => now);
    if (name.includes('open segment')) {
      assert.ok(s.checkAndCommit(digest(0), mac(0), now).ok);
      await s.durable();
    }
    fault(dir);
    assert.equal(verdict(s.checkAndCommit(digest(1), mac(1), now)), 'ok');
    await assert.rejects(s.durable(), errno);
    assert.equal(verdict(s.checkAndCommit(digest(1), mac(0), now)), DROP.replay, 'still refused in this process');
    now += 1_000;
    assert.ok(s.checkAndCommit(digest(2), mac(2), now).ok);
    if (!name.includes('/dev/full')) await assert.rejects(s.durable(), errno, 'not repaired yet: still refused');
    repair(dir);
    assert.ok(s.checkAndCommit(digest(3), mac(3), now).ok); // the retry is the next knock, not a timer
    await s.durable();
    const restarted = store(dir, () => now);
    assert.equal(verdict(restarted.checkAndCommit(digest(3), mac(0), now)), DROP.replay, 'the record after the repair is on disk');
    assert.ok(restarted.checkAndCommit(digest(1), mac(1), now).ok, 'the failed knock was never on disk (and never opened anything)');
    restarted.close();
    s.close();
  });
}

test('a record lost in a failed write is never reported durable to a later durable() call', async () => {
  const dir = tempDir();
  const now = 1_000_000;
  const s = store(dir, () => now);
  rmSync(dir, { recursive: true });
  assert.ok(s.checkAndCommit(digest(1), mac(1), now).ok);
  const first = s.durable(); // covers digest 1
  assert.ok(s.checkAndCommit(digest(2), mac(2), now).ok); // committed before the write runs, its caller asks later
  await assert.rejects(first, /ENOENT/);
  mkdirSync(dir);
  await assert.rejects(s.durable(), /not written: ENOENT/, 'digest 2 went down with the failed write');
  assert.ok(s.checkAndCommit(digest(3), mac(3), now).ok);
  await s.durable();
  s.close();
  assert.equal(verdict(s.checkAndCommit(digest(4), mac(4), now)), 'ok');
  await assert.rejects(s.durable(), /closed/, 'nothing is reported durable after close()');
});

test('short writes: the store writes on from where writeSync stopped; records stay whole and aligned', async () => {
  const dir = tempDir();
  const now = 1_000_000;
  const s = store(dir, () => now);
  let calls = 0;
  const restore = replaceWriteSync((fd, bytes, offset, length) => {
    calls++;
    return realWriteSync(fd, bytes, offset, Math.min(length, 7));
  });
  try {
    for (let i = 0; i < 3; i++) assert.ok(s.checkAndCommit(digest(i), mac(i), now).ok);
    await s.durable();
  } finally {
    restore();
  }
  assert.equal(calls, Math.ceil((16 + 3 * 24) / 7));
  s.close();
  assert.equal(readFileSync(join(dir, segmentName(now))).length, 16 + 3 * 24);
  const again = store(dir, () => now);
  for (let i = 0; i < 3; i++) assert.equal(verdict(again.checkAndCommit(digest(i), mac(0), now)), DROP.replay);
  again.close();
});

test('a write that fails half way is cut back: durable() rejects, and the records after it stay aligned', async () => {
  const dir = tempDir();
  const now = 1_000_000;
  const s = store(dir, () => now);
  assert.ok(s.checkAndCommit(digest(1), mac(1), now).ok);
  await s.durable();
  let calls = 0;
  const restore = replaceWriteSync((fd, bytes, offset, _length) => {
    if (++calls === 1) return realWriteSync(fd, bytes, offset, 30); // one record and a half
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  });
  try {
    assert.ok(s.checkAndCommit(digest(2), mac(2), now).ok);
    assert.ok(s.checkAndCommit(digest(3), mac(3), now).ok);
    await assert.rejects(s.durable(), /ENOSPC/);
  } finally {
    restore();
  }
  assert.equal(readFileSync(join(dir, segmentName(now))).length, 16 + 24, 'the half-written batch is gone');
  assert.ok(s.checkAndCommit(digest(4), mac(4), now).ok);
  await s.durable();
  s.close();
  const again = store(dir, () => now);
  assert.equal(verdict(again.checkAndCommit(digest(1), mac(0), now)), DROP.replay);
  assert.equal(verdict(again.checkAndCommit(digest(4), mac(0), now)), DROP.replay, 'written after the failure, read back whole');
  assert.ok(again.checkAndCommit(digest(2), mac(2), now).ok, 'lost with the failed write');
  again.close();
});
