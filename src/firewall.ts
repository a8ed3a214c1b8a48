// The firewall interface: one small surface so nftables (and later iptables+ipset) backends are interchangeable. Inputs are typed, validated values.
import type { Access } from './access.ts';
import type { Address } from './address.ts';

export interface GrantTarget {
  readonly address: Address;
  readonly access: Access;
}

export interface Grant extends GrantTarget {
  /** Enforced by the kernel: the element disappears after this, whether or not sesame runs. */
  readonly ttlSeconds: number;
}

export interface Firewall {
  /** Creates (or re-creates) the backend's own table with the protected ports; touches nothing else. */
  setup(protectedPorts: readonly Access[]): Promise<void>;
  /** Opens each target for ttlSeconds; a target already open gets the new timeout. All or nothing. */
  grant(grants: readonly Grant[]): Promise<void>;
  /** Closes each target now; targets not open are ignored. */
  revoke(targets: readonly GrantTarget[]): Promise<void>;
  /** Stops the backend's helper process; the table and its open elements stay (ports remain closed to others). */
  close(): Promise<void>;
}
