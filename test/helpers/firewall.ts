// The one fake Firewall, for in-process tests of the packet path (the real backend is tested against the kernel in test/server/nftables.test.ts): it records what it is asked to open, can fail on demand, holds a gate, and is as full as the kernel's maps at `capacity`.
import { GrantBookFullError } from '../../src/server/firewall.ts';
import type { Firewall, Grant, LiveGrant } from '../../src/server/firewall.ts';
import type { Address } from '../../src/protocol/address.ts';
import type { TokenElement } from '../../src/server/tokens.ts';

export class RecordingFirewall implements Firewall {
  /** Every grant() call, as asked. */
  readonly calls: Grant[][] = [];
  /** What it holds: the grants of the calls that succeeded. */
  readonly held: Grant[] = [];
  /** Every confirm() call, in order. */
  readonly confirms: { readonly address: Address; readonly port: number }[] = [];
  /** When set, grant() rejects with it. */
  failWith: Error | undefined;
  /** When set, grant() waits for it before holding anything (to race a revocation against a grant). */
  gate: Promise<void> | undefined;
  readonly capacity: number;

  constructor(capacity = Number.POSITIVE_INFINITY) {
    this.capacity = capacity;
  }

  async setup(): Promise<void> {}

  async grant(grants: readonly Grant[]): Promise<void> {
    this.calls.push([...grants]);
    if (this.failWith !== undefined) throw this.failWith;
    if (this.held.length + grants.length > this.capacity) throw new GrantBookFullError('full');
    await this.gate;
    this.held.push(...grants);
  }

  async confirm(address: Address, port: number): Promise<void> {
    this.confirms.push({ address, port });
  }

  async close(_grants: readonly LiveGrant[]): Promise<void> {}

  async list(): Promise<LiveGrant[]> {
    return [];
  }

  async setRevokedMarks(): Promise<void> {}

  /** The last token refresh. */
  tokens: readonly TokenElement[] = [];

  async setTokens(tokens: readonly TokenElement[]): Promise<void> {
    this.tokens = tokens;
  }

  async cut(): Promise<number> {
    return 0;
  }

  async stop(): Promise<void> {}
}
