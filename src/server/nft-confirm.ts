// The nft text of the knock confirmation (README.md, "Confirmation"): its sets, its rules, and the element an accepted knock adds. Every value is rebuilt from a validated type (ports as integers, addresses from bytes); nothing here runs nft.
import { isPort } from '../protocol/access.ts';
import { addressFromBytes } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import { CONFIRM } from '../limits.ts';
import type { PortRange } from '../port-range.ts';
import { checkTable } from './nft-rules.ts';

/** Pending confirmations: bounded (size), self-expiring (timeout), and dynamic so that the answering rule can delete one. */
export function confirmSets(t: string): string[] {
  const flags = `size ${CONFIRM.setSize}; flags dynamic,timeout; timeout ${CONFIRM.timeoutSeconds}s;`;
  return [`add set ${t} confirm4 { type ipv4_addr . inet_service; ${flags} }`, `add set ${t} confirm6 { type ipv6_addr . inet_service; ${flags} }`];
}

/**
 * The confirmation range: a SYN from an address . port in confirm4/6 gets a kernel-made reset and uses the element up
 * (one answer per accepted knock); every other TCP packet to the range is dropped, so a scanner sees silence there.
 */
export function confirmRules(t: string, r: PortRange | undefined): string[] {
  if (r === undefined) return [];
  if (!isPort(r.first) || !isPort(r.last) || r.last <= r.first) throw new RangeError(`confirmation range ${r.first}-${r.last} is not a port range`);
  const to = `tcp dport ${r.first}-${r.last}`;
  const syn = 'tcp flags & (fin|syn|rst|ack) == syn';
  return [
    `add rule ${t} input ${to} ${syn} ip saddr . tcp dport @confirm4 delete @confirm4 { ip saddr . tcp dport } reject with tcp reset`,
    `add rule ${t} input ${to} ${syn} ip6 saddr . tcp dport @confirm6 delete @confirm6 { ip6 saddr . tcp dport } reject with tcp reset`,
    `add rule ${t} input ${to} drop`,
  ];
}

/** One nft line: address . port answers one SYN for CONFIRM.timeoutSeconds (see confirmRules). */
export function confirmCommand(table: string, target: Address, port: number): string {
  const address = addressFromBytes(target.bytes);
  if (address === undefined || address.family !== target.family) throw new Error('confirmation address is not a 4- or 16-byte IP address');
  if (!isPort(port)) throw new RangeError(`confirmation port ${port} is not a port`);
  return `add element inet ${checkTable(table)} confirm${address.family} { ${address.text} . ${port} timeout ${CONFIRM.timeoutSeconds}s }`;
}
