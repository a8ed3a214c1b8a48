// Freshness window (step 7): inside passes, outside is refused with the measured skew.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkFreshness } from '../../src/server/freshness.ts';
import { DROP } from '../../src/protocol/reasons.ts';

test('freshness window: inside passes, outside reports the skew', () => {
  assert.ok(checkFreshness(1000, 1000, 30_000).ok);
  assert.ok(checkFreshness(1000 - 30_000, 1000, 30_000).ok);
  assert.ok(checkFreshness(1000 + 30_000, 1000, 30_000).ok);
  const old = checkFreshness(1000 - 30_001, 1000, 30_000);
  assert.equal(old.ok ? 'ok' : old.reason, DROP.stale);
  assert.equal(old.ok ? 0 : old.detail?.['skewMs'], -30_001);
  const ahead = checkFreshness(1000 + 45_000, 1000, 30_000);
  assert.equal(ahead.ok ? 0 : ahead.detail?.['skewMs'], 45_000);
});
