// Step 10 of the packet path: the firewall interface. The kernel is the book of grants: every grant carries its owner, so any start, reload or CLI sees the same truth. One small surface so other backends stay possible. Inputs are typed, validated values.
import type { Access } from '../protocol/access.ts';
import type { Address } from '../protocol/address.ts';
import type { KeyId } from '../protocol/bytes.ts';
import { toHex } from '../protocol/bytes.ts';
import type { PortRange } from '../port-range.ts';
import type { ProcessId } from '../process.ts';
import type { EstablishedConnection } from './sockets.ts';
import type { TokenElement } from './tokens.ts';

export interface GrantTarget {
  readonly address: Address;
  readonly access: Access;
}

/** Who a grant belongs to: the key (hex key id) and the connection mark its admitted connections carry. */
export interface Owner {
  readonly keyIdHex: string;
  readonly mark: number;
}

/** What a policy allows a knock to open (step 9). */
export interface Opening extends GrantTarget {
  /** Enforced by the kernel: the element disappears after this, whether or not sesame runs. */
  readonly ttlSeconds: number;
}

export interface Grant extends Opening {
  readonly owner: Owner;
}

/** A grant as the kernel holds it. */
export interface LiveGrant extends GrantTarget {
  readonly owner: Owner;
  readonly expiresInSeconds: number;
}

/** A connection admitted through a grant, as recorded when its first packet passed. */
export interface AdmittedConnection {
  /** conntrack's id of the connection. */
  readonly ctId: number;
  readonly source: Address;
  readonly mark: number;
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
  /** udp: the slot tokens valid now; a packet without one dies in the kernel, whatever its source (tokens.ts). */
  readonly tokens: readonly TokenElement[];
}

export interface TableSetup {
  /** Checked in the input hook, by the port a packet is delivered to (after any DNAT). */
  readonly protectedPorts: readonly Access[];
  /** Checked in prerouting before DNAT, by the port the client addressed on this host: published (Docker) and forwarded (VM) ports. */
  readonly forwardPorts?: readonly Access[];
  readonly guard?: KnockPortGuard;
  /** Caps the number of grants the kernel holds (limits.maxGrants). */
  readonly maxGrants: number;
  /** Connection marks of revoked keys: their established connections stop passing traffic. */
  readonly revokedMarks: readonly number[];
  /** This process, recorded as the table's one daemon; start-up fails if another running daemon holds it. */
  readonly daemon: ProcessId;
  /** TCP connections to protected ports that were established before the table: admitted, so starting sesame freezes no session. */
  readonly established: readonly EstablishedConnection[];
  /** TCP ports dropped silently, except a knock's own confirmation SYN (see confirm); absent: no confirmation rules. */
  readonly confirmPorts?: PortRange;
}

/** Thrown by setup() when another running daemon already manages the table; names that daemon. */
export class TableInUseError extends Error {}

/** Thrown by grant() when the kernel's grant map is full. */
export class GrantBookFullError extends Error {}

export interface Firewall {
  /** Creates (or updates) the backend's own table and claims it for this daemon; touches nothing else. */
  setup(s: TableSetup): Promise<void>;
  /** Opens each target for ttlSeconds, owned by its key; a target already open gets the new timeout and owner. All or nothing. */
  grant(grants: readonly Grant[]): Promise<void>;
  /**
   * For CONFIRM.timeoutSeconds, the kernel answers the first TCP SYN from address to port (in the table's confirmPorts)
   * with a reset: the knocking client's proof that its grant is in the kernel. Nothing else ever gets an answer there.
   */
  confirm(address: Address, port: number): Promise<void>;
  /** Closes each grant now (targets no longer open are ignored). */
  close(grants: readonly LiveGrant[]): Promise<void>;
  /** Every live grant, read from the kernel. */
  list(): Promise<LiveGrant[]>;
  /** Replaces the set of revoked connection marks (one transaction). */
  setRevokedMarks(marks: readonly number[]): Promise<void>;
  /** Replaces the knock port's slot tokens (one transaction); each expires on its own. */
  setTokens(tokens: readonly TokenElement[]): Promise<void>;
  /** Stops the admitted connections that match from passing traffic, whatever their key; returns how many. */
  cut(match: (c: AdmittedConnection) => boolean): Promise<number>;
  /** Releases the table's daemon claim and stops the helper; the table and its grants stay (ports remain closed to others). */
  stop(): Promise<void>;
}

/**
 * The mark set on connections a key's grants admit: the key id's first 31 bits with the top bit set, so it is never 0
 * (unmarked) and rarely meets the small marks other tools use. Two keys may share one (1 in 2^31 per pair): the daemon
 * then declines to cut sessions by that mark rather than cut an active key's (see the README's firewall section).
 */
export function connectionMark(keyId: KeyId): number {
  const view = new DataView(keyId.buffer, keyId.byteOffset, keyId.byteLength);
  return (0x80000000 | (view.getUint32(0) & 0x7fffffff)) >>> 0;
}

export function ownerOf(keyId: KeyId): Owner {
  return { keyIdHex: toHex(keyId), mark: connectionMark(keyId) };
}
