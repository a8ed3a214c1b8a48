// Replay record: check-and-commit, persistence across restarts (including torn writes), pruning and the cap.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ReplayStore } from '../../src/server/replay.ts';
import { DROP } from '../../src/protocol/reasons.ts';
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

test('a digest is accepted once; its packet mac is remembered', async () => {
  let now = 1_000_000;
  const store = new ReplayStore({ dir: tempDir(), windowMs: 30_000, maxEntries: 100, now: () => now });
  const mac = new Uint8Array(16).fill(7);
  assert.ok(store.checkAndCommit(digest(1), mac, now).ok);
  const again = store.checkAndCommit(digest(1), new Uint8Array(16), now);
  assert.equal(again.ok ? 'ok' : again.reason, DROP.replay);
  assert.ok(store.seenPacket(mac));
  assert.ok(!store.seenPacket(new Uint8Array(16).fill(8)));
  await store.durable();
  store.close();
});

test('accepted digests survive a restart, even without close() (kill -9), and a torn last record is ignored', async () => {
  const dir = tempDir();
  const now = 1_000_000;
  const first = new ReplayStore({ dir, windowMs: 30_000, maxEntries: 100, now: () => now });
  assert.ok(first.checkAndCommit(digest(1), new Uint8Array(16), now).ok);
  assert.ok(first.checkAndCommit(digest(2), new Uint8Array(16).fill(1), now).ok);
  await first.durable(); // the pipeline awaits this before opening the firewall
  const segment = readdirSync(join(dir)).find((n) => n.startsWith('replay-'));
  assert.ok(segment);
  appendFileSync(join(dir, segment), Buffer.alloc(10, 0xff)); // a crash in the middle of the next record
  const second = new ReplayStore({ dir, windowMs: 30_000, maxEntries: 100, now: () => now + 1000 });
  for (const n of [1, 2]) {
    const r = second.checkAndCommit(digest(n), new Uint8Array(16), now);
    assert.equal(r.ok ? 'ok' : r.reason, DROP.replay, `digest ${n} after restart`);
  }
  assert.ok(second.checkAndCommit(digest(3), new Uint8Array(16), now).ok);
  second.close();
});

test('entries leave with the window; old segment files are deleted', async () => {
  const dir = tempDir();
  let now = 1_000_000;
  const store = new ReplayStore({ dir, windowMs: 1_000, maxEntries: 100, now: () => now });
  for (let i = 0; i < 10; i++) assert.ok(store.checkAndCommit(digest(i), new Uint8Array(16).fill(i), now).ok);
  await store.durable();
  assert.equal(store.size, 10);
  now += 5_000;
  assert.ok(store.checkAndCommit(digest(100), new Uint8Array(16).fill(100), now).ok);
  await store.durable();
  assert.equal(store.size, 1, 'expired entries pruned');
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('replay-')).length, 1, 'expired segment removed');
  store.close();
});

test('when full, new knocks are refused rather than old ones forgotten', () => {
  const now = 1_000_000;
  const store = new ReplayStore({ dir: tempDir(), windowMs: 30_000, maxEntries: 16, now: () => now });
  for (let i = 0; i < 16; i++) assert.ok(store.checkAndCommit(digest(i), new Uint8Array(16).fill(i), now).ok);
  const r = store.checkAndCommit(digest(99), new Uint8Array(16).fill(99), now);
  assert.equal(r.ok ? 'ok' : r.reason, DROP.replayFull);
  const old = store.checkAndCommit(digest(0), new Uint8Array(16), now);
  assert.equal(old.ok ? 'ok' : old.reason, DROP.replay, 'earlier knocks still refused');
  store.close();
});
