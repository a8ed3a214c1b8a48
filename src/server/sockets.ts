// The TCP connections established on this host when the daemon starts, read from /proc/net/tcp and /proc/net/tcp6 (this network namespace's), so that starting sesame never freezes a session already open to a protected port. Trusts nothing in the files: malformed lines are skipped.
import { readFileSync } from 'node:fs';
import { addressFromBytes, isV4Mapped } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import { isPort } from '../protocol/access.ts';

export interface EstablishedConnection {
  /** The peer: the connection's source as the input hook sees its packets. */
  readonly remote: Address;
  readonly remotePort: number;
  readonly localPort: number;
}

/** TCP_ESTABLISHED in the kernel's st column. */
const ESTABLISHED = '01';

/** "0100007F:0016" -> bytes and port. The kernel prints each 32-bit word of the address in host (little-endian) order. */
function endpoint(text: string, bytes: 4 | 16): { address: Uint8Array; port: number } | undefined {
  const m = /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4})$/.exec(text);
  if (m === null || m[1]?.length !== bytes * 2) return undefined;
  const hex = m[1];
  const address = new Uint8Array(bytes);
  for (let word = 0; word < bytes / 4; word++) {
    for (let i = 0; i < 4; i++) address[word * 4 + i] = parseInt(hex.slice(word * 8 + (3 - i) * 2, word * 8 + (3 - i) * 2 + 2), 16);
  }
  return { address, port: parseInt(m[2] ?? '', 16) };
}

/** Parses one /proc/net/tcp{,6} text; `bytes` is 4 for tcp, 16 for tcp6. */
export function parseProcNetTcp(text: string, bytes: 4 | 16): EstablishedConnection[] {
  const out: EstablishedConnection[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (state !== ESTABLISHED || local === undefined || remote === undefined) continue;
    const l = endpoint(local, bytes);
    const r = endpoint(remote, bytes);
    // A v4-mapped peer on an IPv6 socket is an IPv4 connection: its packets reach the input hook as IPv4.
    const peer = r === undefined ? undefined : addressFromBytes(bytes === 16 && isV4Mapped(r.address) ? r.address.subarray(12) : r.address);
    if (l === undefined || r === undefined || peer === undefined || !isPort(l.port) || !isPort(r.port)) continue;
    out.push({ remote: peer, remotePort: r.port, localPort: l.port });
  }
  return out;
}

/** Established TCP connections whose local port is one of `ports`; none if /proc cannot be read. */
export function establishedTo(ports: ReadonlySet<number>): EstablishedConnection[] {
  const read = (file: string): string => {
    try {
      return readFileSync(file, 'latin1');
    } catch {
      return '';
    }
  };
  return [...parseProcNetTcp(read('/proc/net/tcp'), 4), ...parseProcNetTcp(read('/proc/net/tcp6'), 16)].filter((c) => ports.has(c.localPort));
}
