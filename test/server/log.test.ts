// The drop log: every drop counted, only the first few per interval logged, the rest summarised; a stale knock's line says how far off the clock is.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { parseAddress } from '../../src/protocol/address.ts';
import { DropLog } from '../../src/server/log.ts';

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

test('a flood of drops is counted in full but logged at most perInterval times per interval, then summarised', async () => {
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
