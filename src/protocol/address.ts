// IP addresses and CIDR prefixes as typed values. Parses text from the OS or an operator and 4/16-byte fields from packets; IPv4-mapped IPv6 is folded to IPv4.
import { isIPv4, isIPv6 } from 'node:net';

export interface Address {
  readonly family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
  /** Canonical text: dotted quad, or RFC 5952 IPv6. */
  readonly text: string;
}

export interface Cidr {
  readonly address: Address;
  readonly prefixBits: number;
  readonly text: string;
}

const V4_MAPPED_PREFIX = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff);

/** 16 bytes of the form ::ffff:a.b.c.d: never a real IPv6 source or target (RFC 4291 2.5.5.2); sesame refuses them on the wire. */
export function isV4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 12; i++) if (b[i] !== V4_MAPPED_PREFIX[i]) return false;
  return true;
}

function formatV6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let bestAt = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

/** From 4 or 16 packet bytes; undefined for any other length. */
export function addressFromBytes(raw: Uint8Array): Address | undefined {
  if (raw.length === 4) {
    const bytes = Uint8Array.from(raw);
    return { family: 4, bytes, text: bytes.join('.') };
  }
  if (raw.length !== 16) return undefined;
  if (isV4Mapped(raw)) return addressFromBytes(raw.subarray(12));
  const bytes = Uint8Array.from(raw);
  return { family: 6, bytes, text: formatV6(bytes) };
}

function v4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function v6Bytes(text: string): Uint8Array {
  // An embedded dotted quad ("::ffff:10.0.0.1") becomes two hex groups first.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  let s = text;
  if (isIPv4(tail)) {
    const q = v4Bytes(tail);
    s = `${text.slice(0, lastColon + 1)}${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`;
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const [head = '', rest] = s.split('::');
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** From OS or operator text (zone ids refused); undefined if it is not an IP address. */
export function parseAddress(text: string): Address | undefined {
  if (isIPv4(text)) return addressFromBytes(v4Bytes(text));
  if (isIPv6(text) && !text.includes('%')) return addressFromBytes(v6Bytes(text));
  return undefined;
}

/** "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const [addrText = '', bitsText, extra] = text.split('/');
  if (extra !== undefined) return undefined;
  const address = parseAddress(addrText);
  if (address === undefined) return undefined;
  const maxBits = address.family === 4 ? 32 : 128;
  const prefixBits = bitsText === undefined ? maxBits : /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  if (!(prefixBits >= 0 && prefixBits <= maxBits)) return undefined;
  return { address, prefixBits, text: `${address.text}/${prefixBits}` };
}

export function cidrContains(cidr: Cidr, a: Address): boolean {
  if (cidr.address.family !== a.family) return false;
  let bits = cidr.prefixBits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((cidr.address.bytes[i] ?? 0) & mask) !== ((a.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** The unit a rate limit applies to: an IPv4 address, or an IPv6 /64 (one subscriber's usual allocation). */
export function rateKey(a: Address): string {
  return a.family === 4 ? a.text : `${formatV6(Uint8Array.from([...a.bytes.subarray(0, 8), 0, 0, 0, 0, 0, 0, 0, 0]))}/64`;
}
