// The grant book: grants tracked by the key that earned them, taken back on revocation, bounded, pruned as they expire.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { GrantBook } from '../../src/server/grants.ts';

const addr = (t: string): Address => parseAddress(t) ?? assert.fail(t);
const grant = (a: string, port: number, ttlSeconds: number) => ({ address: addr(a), access: { proto: 'tcp' as const, port }, ttlSeconds });

test('take returns the open grants of the revoked keys only, once', () => {
  let now = 0;
  const book = new GrantBook(100, () => now);
  book.record('k1', 'alice', [grant('10.0.0.2', 22, 30), grant('10.0.0.2', 443, 30)]);
  book.record('k2', 'bob', [grant('10.0.0.3', 22, 30)]);
  assert.equal(book.size, 3);
  const taken = book.take(new Set(['k1']));
  assert.deepEqual(taken.map((t) => `${t.user} ${t.target.address.text} ${t.target.access.port}`).sort(), ['alice 10.0.0.2 22', 'alice 10.0.0.2 443']);
  assert.equal(book.take(new Set(['k1'])).length, 0, 'taken once');
  assert.equal(book.size, 1);
  now += 31_000;
  assert.equal(book.take(new Set(['k2'])).length, 0, 'an expired grant is not "open": nothing to close');
});

test('a repeated grant extends, never shortens, and is counted once', () => {
  let now = 0;
  const book = new GrantBook(100, () => now);
  book.record('k1', 'alice', [grant('10.0.0.2', 22, 60)]);
  book.record('k1', 'alice', [grant('10.0.0.2', 22, 10)]);
  assert.equal(book.size, 1);
  now += 30_000;
  assert.equal(book.take(new Set(['k1'])).length, 1, 'still open at 30 s: the 60 s grant was kept');
});

test('bounded: hasRoom is false when full of live grants, true again once they expire', () => {
  let now = 0;
  const book = new GrantBook(16, () => now);
  for (let i = 0; i < 16; i++) book.record(`k${i}`, 'u', [grant('10.0.0.2', 1000 + i, 5)]);
  assert.equal(book.hasRoom(1), false);
  now += 6_000;
  assert.equal(book.hasRoom(1), true, 'expired grants pruned to make room');
  assert.equal(book.size, 0);
});
