// Token-bucket rate limiter with an injected clock: numbered cases in the style of WireGuard's ratelimiter selftest.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter } from '../../src/server/ratelimit.ts';

test('burst, refill and per-source isolation', () => {
  let now = 1_000_000;
  const rl = new RateLimiter({ perSecond: 2, burst: 3, maxSources: 100, now: () => now });
  const cases: [number, string, boolean][] = [
    // [advance ms, source, admitted]
    [0, 'a', true], [0, 'a', true], [0, 'a', true], [0, 'a', false], // burst of 3, then refused
    [0, 'b', true], // another source is unaffected
    [499, 'a', false], [1, 'a', true], [0, 'a', false], // 2/s: one token after 500 ms
    [10_000, 'a', true], [0, 'a', true], [0, 'a', true], [0, 'a', false], // refill caps at burst
  ];
  cases.forEach(([advance, source, admitted], i) => {
    now += advance;
    assert.equal(rl.admit(source), admitted, `case ${i}`);
  });
});

test('the table is bounded; idle sources are evicted to make room, busy ones are not', () => {
  let now = 0;
  const rl = new RateLimiter({ perSecond: 1, burst: 1, maxSources: 16, now: () => now });
  for (let i = 0; i < 16; i++) assert.ok(rl.admit(`s${i}`));
  assert.equal(rl.admit('new'), false, 'full of busy sources: the new one waits');
  assert.equal(rl.size, 16);
  now += 1_000; // every bucket has refilled: the sources are idle
  assert.ok(rl.admit('new'));
  assert.ok(rl.size <= 16);
  for (let i = 0; i < 100_000; i++) rl.admit(`flood${i}`);
  assert.ok(rl.size <= 16, 'a spoofed-source flood never grows the table past its cap');
});

test('the global budget bounds box opens for all sources together: busy, not rate_limited', () => {
  let now = 0;
  const rl = new RateLimiter({ perSecond: 5, burst: 10, maxSources: 100_000, globalPerSecond: 100, now: () => now });
  const verdicts = new Map<string, number>();
  for (let i = 0; i < 1_000; i++) {
    const v = rl.take(`forged${i}`);
    verdicts.set(v, (verdicts.get(v) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(verdicts), { ok: 100, busy: 900 }, 'a thousand forged sources get the global burst and no more');
  now += 1_000;
  assert.equal(rl.take('legit'), 'ok', 'after a second the budget has refilled');
});

test('when the global budget runs low, its lower half goes to quiet sources only: busy senders cannot starve a new knock', () => {
  let now = 0;
  const rl = new RateLimiter({ perSecond: 5, burst: 10, maxSources: 100_000, globalPerSecond: 100, now: () => now });
  // 40 insider sources, each sending at its own per-source rate (5/s): 200/s together, twice the global budget.
  const insiders = new Map<string, number>();
  const legit: string[] = [];
  for (let round = 0; round < 20; round++) {
    for (let s = 0; s < 40; s++) {
      const v = rl.take(`insider${s}`);
      insiders.set(v, (insiders.get(v) ?? 0) + 1);
    }
    if (round % 5 === 4) legit.push(rl.take('legit'));
    now += 200;
  }
  assert.deepEqual(legit, ['ok', 'ok', 'ok', 'ok'], 'the legitimate source, knocking now and then, is served every time');
  assert.ok((insiders.get('busy') ?? 0) > 0, 'the insiders were refused as busy');
  assert.ok((insiders.get('ok') ?? 0) <= 100 + 4 * 100, `insiders got ${insiders.get('ok')} opens: within the global budget`);
});

test('forged sources that each look quiet can spend the global budget; a source that knocked successfully before still gets a box open', () => {
  let now = 0;
  const rl = new RateLimiter({ perSecond: 5, burst: 10, maxSources: 1_000_000, globalPerSecond: 100, now: () => now });
  rl.vouch('user-home');
  const user: string[] = [];
  let forgedOpens = 0;
  for (let i = 0; i < 20_000; i++) {
    if (rl.take(`forged${i}`) === 'ok') forgedOpens++; // every packet from a new address: each one quiet, together 50x the budget
    now += 0.1;
    if (i % 4_000 === 3_999) user.push(rl.take('user-home'));
  }
  assert.deepEqual(user, ['ok', 'ok', 'ok', 'ok', 'ok'], 'the vouched source is served from its reserve');
  assert.ok(forgedOpens <= 100 + 2 * 100 + 1, `the forged sources got ${forgedOpens} box opens in 2 s: no more than the global budget`);
});
