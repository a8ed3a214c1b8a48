// The confirmation watch (confirm.ts) with real sockets on loopback, and the range it picks from (port-range.ts): a reset on the named port with a quiet control port confirms; a host that resets both confirms nothing; no reset, no confirmation.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { after, test } from 'node:test';
import { watchConfirmation } from '../../src/client/confirm.ts';
import type { Target } from '../../src/client/send.ts';
import { parseRange, pickPorts } from '../../src/port-range.ts';

const v4: Target = { host: 'server.test', address: '127.0.0.1', family: 4 };
const servers: Server[] = [];
after(() => { for (const s of servers) s.close(); });

/** A loopback port that accepts (no reset: never a confirmation), or, closed again, one that resets. */
async function port(keepListening: boolean): Promise<number> {
  const srv = createServer((c) => c.destroy());
  await new Promise<void>((resolve) => srv.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = srv.address();
  assert.ok(address !== null && typeof address === 'object');
  if (keepListening) servers.push(srv);
  else await new Promise((resolve) => srv.close(resolve));
  return address.port;
}

test('a reset on the named port while the control port gives none: confirmed, quickly', { timeout: 10_000 }, async () => {
  const watch = watchConfirmation(v4, { confirm: await port(false), control: await port(true) });
  const c = await watch.result;
  assert.equal(c.kind, 'confirmed');
  assert.ok(c.kind === 'confirmed' && c.elapsedMs < 1000, JSON.stringify(c));
});

test('the control port resets too (a host without sesame\'s silent range): answersAll, not confirmed', { timeout: 10_000 }, async () => {
  const watch = watchConfirmation(v4, { confirm: await port(false), control: await port(false) });
  assert.equal((await watch.result).kind, 'answersAll');
});

test('no reset: nothing is confirmed; stop() ends the watch with none', { timeout: 10_000 }, async () => {
  const watch = watchConfirmation(v4, { confirm: await port(true), control: await port(true) });
  setTimeout(() => watch.stop(), 500);
  assert.equal((await watch.result).kind, 'none');
});

test('ranges: FIRST-LAST with at least two ports and at most 1024; the picked ports are distinct and inside', () => {
  assert.deepEqual(parseRange('62202-62217'), { ok: true, value: { first: 62202, last: 62217 } });
  for (const bad of ['62202', '62202-62202', '62217-62202', '0-10', '1-70000', '1000-9000', ' - ', '1-2-3']) assert.equal(parseRange(bad).ok, false, bad);
  const r = { first: 40000, last: 40003 };
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const { confirm, control } = pickPorts(r);
    assert.notEqual(confirm, control);
    for (const p of [confirm, control]) assert.ok(p >= r.first && p <= r.last, String(p));
    seen.add(confirm);
  }
  assert.equal(seen.size, 4, 'every port of the range is used');
  assert.deepEqual(pickPorts({ first: 5, last: 6 }, () => 0), { confirm: 5, control: 6 });
});
