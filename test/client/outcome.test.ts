// The client's verdict after a --wait knock (outcome.ts): every combination of what the confirmation port and the protected port did, its exit code, and when another server key is worth a try. Pure functions, no network.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXIT } from '../../src/errors.ts';
import { tryNextKey, VERDICT_EXIT, verdictOf } from '../../src/client/outcome.ts';
import type { PortState, Verdict } from '../../src/client/outcome.ts';
import type { Confirmation } from '../../src/client/confirm.ts';

// Case: what the confirmation watch saw, what the port did, the verdict, the exit code, whether the next server key is tried.
const CASES: [string, Confirmation['kind'], PortState, Verdict, number, boolean][] = [
  ['1 confirmed, port open', 'confirmed', 'open', 'confirmed', EXIT.ok, false],
  ['2 earlier grant open, this knock not confirmed (refused, lost, or the wrong server key)', 'none', 'open', 'unconfirmed', EXIT.notConfirmed, true],
  ['3 earlier grant open, and the host resets the whole confirmation range (not ours)', 'answersAll', 'open', 'unconfirmed', EXIT.notConfirmed, true],
  ['4 nothing at all', 'none', 'silent', 'nothing', EXIT.notOpened, true],
  ['5 a host resetting the range, port silent', 'answersAll', 'silent', 'nothing', EXIT.notOpened, true],
  ['6 nothing listens (reset on the port), not confirmed', 'none', 'refused', 'refused', EXIT.notOpened, false],
  ['7 nothing listens, knock confirmed', 'confirmed', 'refused', 'refused', EXIT.notOpened, false],
  ['8 confirmed, but the port stays silent (another firewall)', 'confirmed', 'silent', 'confirmedClosed', EXIT.notOpened, false],
];

for (const [name, confirmation, port, verdict, exit, next] of CASES) {
  test(`verdict ${name}`, () => {
    const v = verdictOf(confirmation, port);
    assert.equal(v, verdict);
    assert.equal(VERDICT_EXIT[v], exit);
    assert.equal(tryNextKey(v), next);
  });
}

test('only a confirmed knock exits 0; "reachable but not confirmed" has its own exit code', () => {
  for (const [, confirmation, port] of CASES) {
    const v = verdictOf(confirmation, port);
    assert.equal(VERDICT_EXIT[v] === EXIT.ok, confirmation === 'confirmed' && port === 'open');
  }
  const others: number[] = Object.entries(EXIT).filter(([k]) => k !== 'notConfirmed').map(([, v]) => v);
  assert.ok(!others.includes(EXIT.notConfirmed), 'EXIT.notConfirmed is distinct');
});
