// The drop log: every drop counted, only the first few per interval and budget logged, the rest summarised by reason; a junk flood hides no security event; a stale knock's line says how far off the clock is.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { parseAddress } from '../../src/protocol/address.ts';
import { FRAME_DROP } from '../../src/protocol/frame.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import { DropLog } from '../../src/server/log.ts';
import type { AnyDrop } from '../../src/server/log.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: pino({ level: 'info' }, sink) };
}

const tick = (): Promise<unknown> => new Promise((r) => setImmediate(r));
const dropped = (lines: Record<string, unknown>[]): Record<string, unknown>[] => lines.filter((l) => l['event'] === 'knock.dropped');

/** Junk: what anyone can send without a key. They share one budget; every other reason has its own. */
const JUNK: readonly AnyDrop[] = [DROP.badSource, DROP.badLength, DROP.badVersion, DROP.badToken, DROP.badMac, DROP.badBox, ...Object.values(FRAME_DROP)];

test('a flood of junk drops is counted in full but logged at most perInterval times per interval, then summarised', async () => {
  let now = 0;
  const { lines, log } = capture();
  const drops = new DropLog(log, { perInterval: 5, intervalMs: 1000, now: () => now });
  const source = parseAddress('10.0.0.9');
  for (let i = 0; i < 10_000; i++) drops.record(i % 2 === 0 ? 'bad_mac' : 'bad_length', source);
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.filter((l) => l['event'] === 'knock.dropped').length, 5);
  assert.equal(drops.totals.get('bad_mac'), 5000);
  now += 1000;
  drops.record('replay', source);
  await new Promise((r) => setImmediate(r));
  const summary = lines.find((l) => l['event'] === 'knock.dropped.suppressed');
  assert.deepEqual(summary?.['counts'], { bad_mac: 4997, bad_length: 4998 }); // 3 bad_mac and 2 bad_length were among the 5 logged
  assert.equal(lines.filter((l) => l['event'] === 'knock.dropped').length, 6, 'a new interval logs again');
});

test('a stale knock is logged with its skew and a hint to check the clock; packet bytes never appear', async () => {
  const { lines, log } = capture();
  const drops = new DropLog(log, { perInterval: 5, intervalMs: 1000, now: () => 0 });
  drops.record('stale', parseAddress('10.0.0.9'), { skewMs: -93_500, windowMs: 30_000, user: 'alice' });
  await new Promise((r) => setImmediate(r));
  const line = lines[0] ?? {};
  assert.equal(line['skewMs'], -93_500);
  assert.equal(line['user'], 'alice');
  assert.match(String(line['msg']), /93\.5 s behind the server clock \(window ±30 s\): check the client's clock/);
  const allowed = new Set(['event', 'level', 'msg', 'pid', 'hostname', 'reason', 'skewMs', 'source', 'time', 'user', 'windowMs']);
  assert.deepEqual(Object.keys(line).filter((k) => !allowed.has(k)), [], 'only decision fields, no packet or key material');
});

test('a flood of 10,000 bad_mac drops does not hide one revoked knock: it is logged with its source and user', async () => {
  let now = 0;
  const { lines, log } = capture();
  const drops = new DropLog(log, { perInterval: 20, intervalMs: 10_000, now: () => now });
  for (let i = 0; i < 10_000; i++) drops.record(DROP.badMac, parseAddress(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
  now += 5_000;
  drops.record(DROP.revoked, parseAddress('192.0.2.7'), { user: 'mallory' });
  await tick();
  const revoked = dropped(lines).filter((l) => l['reason'] === 'revoked');
  assert.equal(revoked.length, 1);
  assert.equal(revoked[0]?.['source'], '192.0.2.7');
  assert.equal(revoked[0]?.['user'], 'mallory');
  assert.equal(dropped(lines).length, 21, '20 junk lines and the revoked one');
  now += 5_000;
  drops.record(DROP.badMac, parseAddress('10.0.0.1'));
  await tick();
  assert.deepEqual(lines.find((l) => l['event'] === 'knock.dropped.suppressed')?.['counts'], { bad_mac: 9_980 });
});

test('every reason flooded at once: each non-junk reason logs its own perInterval lines, junk shares one budget, the total is bounded and suppressed counts are per reason', async () => {
  let now = 0;
  const { lines, log } = capture();
  const perInterval = 3;
  const drops = new DropLog(log, { perInterval, intervalMs: 1000, now: () => now });
  const reasons: AnyDrop[] = [...Object.values(DROP), ...Object.values(FRAME_DROP)];
  const own = reasons.filter((r) => !JUNK.includes(r));
  for (const r of ['revoked', 'bad_signature', 'replay', 'stale', 'unknown_key', 'rate_limited', 'replay_unavailable', 'firewall_error']) assert.ok(own.includes(r as AnyDrop), `${r} has a budget of its own`);
  const each = 100;
  for (let round = 0; round < each; round++) for (const r of reasons) drops.record(r, parseAddress('10.0.0.9'), { user: 'alice' });
  now += 1000;
  drops.flush();
  await tick();
  const logged = dropped(lines);
  assert.equal(logged.length, perInterval * (own.length + 1), 'perInterval lines per budget, no more');
  for (const r of own) assert.equal(logged.filter((l) => l['reason'] === r).length, perInterval, `${r} logged perInterval times`);
  assert.equal(logged.filter((l) => JUNK.includes(l['reason'] as AnyDrop)).length, perInterval, 'all junk reasons together');
  const counts = lines.find((l) => l['event'] === 'knock.dropped.suppressed')?.['counts'] as Record<string, number>;
  for (const r of own) assert.equal(counts[r], each - perInterval, `${r} suppressed count`);
  assert.equal(JUNK.reduce((sum, r) => sum + (counts[r] ?? 0), 0), JUNK.length * each - perInterval, 'junk suppressed, counted by reason');
  for (const r of reasons) assert.equal(drops.totals.get(r), each, `${r} counted in full`);
});
