// Terminal-safe text (src/text.ts; its tests sit with the CLI that prints through it): which characters count as controls, how they are escaped, JSON that stays lossless.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EXIT, OperatorError } from '../../src/errors.ts';
import { hasControl, printable, printableJson, requirePrintable } from '../../src/text.ts';

const CASES: readonly [string, string, string][] = [
  ['1 plain ASCII', 'alice@laptop 2024 ~/.ssh', 'alice@laptop 2024 ~/.ssh'],
  ['2 letters beyond ASCII', 'José 日本 ✓ 🔑', 'José 日本 ✓ 🔑'],
  ['3 ESC and an OSC title', '\u001b]0;owned\u0007', '\\x1b]0;owned\\x07'],
  ['4 cursor up and fake text', 'a\u001b[1Aroot', 'a\\x1b[1Aroot'],
  ['5 TAB, CR, LF, NUL', '\t\r\n\u0000', '\\x09\\x0d\\x0a\\x00'],
  ['6 DEL', 'x\u007f', 'x\\x7f'],
  ['7 C1: NEL and 8-bit CSI', '\u0085\u009b2J', '\\x85\\x9b2J'],
  ['8 no-break space is text', '\u00a0', '\u00a0'],
  ['9 bidi embeddings and overrides', '\u202a\u202b\u202c\u202d\u202e', '\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}'],
  ['10 bidi isolates', '\u2066\u2067\u2068\u2069', '\\u{2066}\\u{2067}\\u{2068}\\u{2069}'],
  ['11 neighbours of the bidi ranges are text', '\u2029\u202f\u2065\u206a', '\u2029\u202f\u2065\u206a'],
  ['12 a backslash stays as is', 'CORP\\alice', 'CORP\\alice'],
];

test('printable and hasControl, case by case', () => {
  for (const [name, input, shown] of CASES) {
    assert.equal(printable(input), shown, name);
    assert.equal(hasControl(input), input !== shown, name);
  }
});

test('every UTF-16 code unit: a control is escaped, anything else is left alone, and no output holds a control', () => {
  const controls = (c: number): boolean => c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
  for (let c = 0; c <= 0xffff; c++) {
    const ch = String.fromCharCode(c);
    assert.equal(hasControl(ch), controls(c), c.toString(16));
    const out = printable(ch);
    assert.equal(hasControl(out), false, c.toString(16));
    if (!controls(c)) assert.equal(out, ch, c.toString(16));
  }
});

test('printableJson parses back to the same value and holds no control but its own line breaks', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.oneof(fc.string({ unit: 'binary' }), fc.array(fc.string({ unit: 'binary' }))), { noNullPrototype: true }), (value) => {
      const text = printableJson(value);
      assert.deepEqual(JSON.parse(text), value);
      assert.equal(hasControl(text.replace(/\n/g, '')), false);
    }),
  );
  assert.equal(printableJson({ c: 'a\u009bb\u202ec' }), '{\n  "c": "a\\u009bb\\u202ec"\n}');
});

test('requirePrintable names the field, shows the text escaped, and uses the given exit code', () => {
  requirePrintable('--reason', 'laptop lost', EXIT.usage);
  assert.throws(
    () => requirePrintable('--reason', 'lost\u001b[2J', EXIT.usage),
    (err: unknown) => err instanceof OperatorError && err.exitCode === EXIT.usage && err.message.startsWith('--reason holds control characters ("lost\\x1b[2J")') && !hasControl(err.message),
  );
});
