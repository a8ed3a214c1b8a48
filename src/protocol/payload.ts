// The canonical payload encoding (README.md, "Payload"): the one byte string each knock request has. The client writes it; the server re-encodes what it decoded and byte-compares. Input: typed, range-checked values.
import type { Access } from './access.ts';
import type { Address } from './address.ts';
import { concat } from './bytes.ts';

export interface PayloadFields {
  readonly timestampMs: number;
  readonly nonce: Uint8Array;
  readonly access: readonly Access[];
  readonly durationSeconds?: number;
  readonly openAddress?: Address;
  readonly confirmPort?: number;
}

/** msgpack's shortest unsigned integer: positive fixint, uint8 (cc), uint16 (cd), uint32 (ce), uint64 (cf). */
function uint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`payload integer ${n} is not an unsigned safe integer`);
  if (n < 0x80) return Uint8Array.of(n);
  if (n <= 0xff) return Uint8Array.of(0xcc, n);
  if (n <= 0xffff) return Uint8Array.of(0xcd, n >>> 8, n & 0xff);
  const out = new Uint8Array(n <= 0xffffffff ? 5 : 9);
  const view = new DataView(out.buffer);
  if (n <= 0xffffffff) {
    out[0] = 0xce;
    view.setUint32(1, n);
  } else {
    out[0] = 0xcf;
    view.setBigUint64(1, BigInt(n));
  }
  return out;
}

/** A fixstr: every key and protocol name is ASCII under 32 bytes. */
const fixstr = (s: string): Uint8Array => Uint8Array.of(0xa0 | s.length, ...Array.from(s, (c) => c.charCodeAt(0)));

/** bin8: every binary field is under 256 bytes. */
const bin8 = (b: Uint8Array): Uint8Array => concat(Uint8Array.of(0xc4, b.length), b);

/** Shortest array header: fixarray up to 15 entries, array16 (dc) for 16. */
const arrayHeader = (n: number): Uint8Array => (n < 16 ? Uint8Array.of(0x90 | n) : Uint8Array.of(0xdc, n >>> 8, n & 0xff));

/** Access entries in their one order: by protocol name ("tcp" before "udp"), then port, without duplicates. */
export function canonicalAccess(access: readonly Access[]): Access[] {
  const sorted = [...access].sort((a, b) => (a.proto === b.proto ? a.port - b.port : a.proto < b.proto ? -1 : 1));
  return sorted.filter((a, i) => i === 0 || a.proto !== sorted[i - 1]?.proto || a.port !== sorted[i - 1]?.port);
}

/** Whether entries are already strictly ascending (no duplicates): the decoder refuses any other order. */
export function isCanonicalAccess(access: readonly Access[]): boolean {
  return access.every((a, i) => {
    const prev = access[i - 1];
    return prev === undefined || prev.proto < a.proto || (prev.proto === a.proto && prev.port < a.port);
  });
}

/** Keys t, n, a, then d, o, c when present; each a fixstr; access entries as given (callers pass them canonical). */
export function writePayload(p: PayloadFields): Uint8Array {
  const parts: Uint8Array[] = [fixstr('t'), uint(p.timestampMs), fixstr('n'), bin8(p.nonce), fixstr('a'), arrayHeader(p.access.length)];
  for (const a of p.access) parts.push(Uint8Array.of(0x92), fixstr(a.proto), uint(a.port));
  let count = 3;
  if (p.durationSeconds !== undefined) {
    parts.push(fixstr('d'), uint(p.durationSeconds));
    count++;
  }
  if (p.openAddress !== undefined) {
    parts.push(fixstr('o'), bin8(p.openAddress.bytes));
    count++;
  }
  if (p.confirmPort !== undefined) {
    parts.push(fixstr('c'), uint(p.confirmPort));
    count++;
  }
  return concat(Uint8Array.of(0x80 | count), ...parts);
}
