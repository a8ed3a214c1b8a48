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
