// The slot tokens (tokens.ts, prefilter.ts): which slots a server accepts at a given time, their timeouts for the kernel, and that the prefilter refuses a packet whose token is not one of them.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { deriveToken, generateServerKeys, generateUserKeys, slotOf } from '../../src/protocol/keys.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { prefilter } from '../../src/server/prefilter.ts';
import { everySlot, tokensAt } from '../../src/server/tokens.ts';
import { DAEMON } from '../../src/limits.ts';

before(async () => {
  await loadSodium();
});

const SLOT = 30_000;

test('a server accepts the tokens of every slot overlapping now ± window, for every key in force', () => {
  const a = generateServerKeys();
  const b = generateServerKeys();
  const now = 100 * SLOT + 10_000;
  const tokens = tokensAt([a, b], now, 30_000);
  const slots = [slotOf(now - 30_000), slotOf(now), slotOf(now + 30_000)];
  assert.deepEqual(slots, [99, 100, 101]);
  const expected = [a, b].flatMap((k) => slots.map((s) => deriveToken(k.mac1Key, s))).sort();
  assert.deepEqual(tokens.map((e) => e.token).sort(), expected);
  // Each stays acceptable until its slot's end is more than a window behind now.
  const ttl = new Map(tokens.map((e) => [e.token, e.ttlMs]));
  assert.equal(ttl.get(deriveToken(a.mac1Key, 99)), 100 * SLOT + 30_000 - now);
  assert.equal(ttl.get(deriveToken(a.mac1Key, 101)), 102 * SLOT + 30_000 - now);
});

test('the kernel set holds one slot ahead, so a refresh a little late never lags the clock', () => {
  const a = generateServerKeys();
  const now = 100 * SLOT;
  assert.equal(tokensAt([a], now, 30_000).length, 3);
  const ahead = tokensAt([a], now, 30_000, SLOT);
  assert.equal(ahead.length, 4);
  assert.ok(ahead.some((e) => e.token === deriveToken(a.mac1Key, 102)));
});

test('the prefilter refuses a knock whose token is out of range (bad_token) before mac1, and accepts a client off by up to the window', () => {
  const server = generateServerKeys();
  const user = generateUserKeys();
  const now = 1_790_000_000_000;
  const verdict = (t: number): string => {
    const r = prefilter(buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, user, server.publicKey, t, systemRandom), [server], { nowMs: now, windowMs: 30_000 });
    return r.ok ? 'ok' : r.reason;
  };
  assert.equal(verdict(now), 'ok');
  assert.equal(verdict(now - 30_000), 'ok');
  assert.equal(verdict(now + 30_000), 'ok');
  assert.equal(verdict(now - 120_000), DROP.badToken);
  assert.equal(verdict(now + 120_000), DROP.badToken);
  const other = generateServerKeys();
  const r = prefilter(buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, user, other.publicKey, now, systemRandom), [server], { nowMs: now, windowMs: 30_000 });
  assert.equal(r.ok ? 'ok' : r.reason, DROP.badToken, 'a knock for another server dies at the token');
});

test('the kernel tokens are refreshed just after every slot boundary, following the clock', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 100 * SLOT + 29_000;
  const runs: number[] = [];
  const stop = everySlot(() => runs.push(now), () => now);
  t.mock.timers.tick(1_000 + DAEMON.tokenRefreshAfterBoundaryMs - 1);
  assert.deepEqual(runs, [], 'not before the boundary');
  now = 101 * SLOT + DAEMON.tokenRefreshAfterBoundaryMs;
  t.mock.timers.tick(1);
  assert.deepEqual(runs, [now], 'just after it');
  now = 102 * SLOT + DAEMON.tokenRefreshAfterBoundaryMs;
  t.mock.timers.tick(SLOT);
  assert.equal(runs.length, 2, 'and after the next one');
  stop();
  t.mock.timers.tick(5 * SLOT);
  assert.equal(runs.length, 2, 'stopped');
});
