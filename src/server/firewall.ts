// Step 11 of the packet path: the firewall interface, one small surface so nftables (and later iptables+ipset) backends are interchangeable. Inputs are typed, validated values.
import type { Access } from '../protocol/access.ts';
import type { Address } from '../protocol/address.ts';

export interface GrantTarget {
  readonly address: Address;
  readonly access: Access;
}

export interface Grant extends GrantTarget {
  /** Enforced by the kernel: the element disappears after this, whether or not sesame runs. */
  readonly ttlSeconds: number;
}

/** How the kernel treats the knock port itself, before any packet reaches sesame. */
export interface KnockPortGuard {
  readonly port: number;
  /**
   * udp: a socket is bound; packets over perSourcePerSecond (burst) from one IPv4 address or IPv6 /64 are dropped in the
   * kernel, so a one-source flood cannot fill the socket's buffer. pcap: no socket is bound; every packet to the port is
   * dropped after libpcap has seen it, so the kernel sends no ICMP "port unreachable" (sesame never answers).
   */
  readonly mode: 'udp' | 'pcap';
  readonly perSourcePerSecond: number;
  readonly perSourceBurst: number;
}

export interface Firewall {
  /** Creates (or re-creates) the backend's own table with the protected ports and the knock-port guard; touches nothing else. */
  setup(protectedPorts: readonly Access[], guard?: KnockPortGuard): Promise<void>;
  /** Opens each target for ttlSeconds; a target already open gets the new timeout. All or nothing. */
  grant(grants: readonly Grant[]): Promise<void>;
  /** Closes each target now; targets not open are ignored. */
  revoke(targets: readonly GrantTarget[]): Promise<void>;
  /** Stops the backend's helper process; the table and its open elements stay (ports remain closed to others). */
  close(): Promise<void>;
}
