// Text that a terminal shows rather than obeys: finds control characters and prints them as escapes. Trusts nothing it is given (files, arguments, environment).
import { OperatorError } from './errors.ts';
import type { ExitCode } from './errors.ts';

/**
 * What a terminal acts on instead of showing: C0 (ESC starts every escape sequence; also TAB, CR and LF, which can fake
 * lines and columns), DEL, C1 (U+009B is a one-character CSI where 8-bit controls are honoured), and the bidirectional
 * embeddings, overrides and isolates U+202A-202E and U+2066-2069, which reorder the text shown after them (Trojan Source).
 */
const C0 = '\\u0000-\\u001f';
const BEYOND_C0 = '\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069';
const CONTROL = new RegExp(`[${C0}${BEYOND_C0}]`);
const EVERY_CONTROL = new RegExp(`[${C0}${BEYOND_C0}]`, 'g');
/** JSON.stringify escapes C0 in strings itself; the C0 left in its output (line breaks) is its own layout. */
const JSON_LEAVES = new RegExp(`[${BEYOND_C0}]`, 'g');

const hex = (c: string, digits: number): string => (c.codePointAt(0) ?? 0).toString(16).padStart(digits, '0');

export function hasControl(text: string): boolean {
  return CONTROL.test(text);
}

/** The text with each control character as \xNN (C0, DEL, C1) or \u{NNNN} (bidi); everything else as is. */
export function printable(text: string): string {
  return text.replace(EVERY_CONTROL, (c) => (c <= '\u00ff' ? `\\x${hex(c, 2)}` : `\\u{${hex(c, 4)}}`));
}

/** Indented JSON that parses back to the same value: JSON.stringify escapes C0 itself, this escapes DEL, C1 and bidi as \uNNNN too. */
export function printableJson(value: object): string {
  return JSON.stringify(value, null, 2).replace(JSON_LEAVES, (c) => `\\u${hex(c, 4)}`);
}

/** Refuses text headed for a file that is printed later: names the field and shows the text escaped. */
export function requirePrintable(field: string, text: string, exitCode: ExitCode): void {
  if (!hasControl(text)) return;
  throw new OperatorError(`${field} holds control characters ("${printable(text)}"): terminal controls (C0, DEL, C1) and bidirectional overrides are refused in names, key comments and reasons`, exitCode);
}
