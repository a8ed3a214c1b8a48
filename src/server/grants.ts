// Step 10 of the packet path: the book of open grants, by the key that earned them, so revoking a key closes its access at once. Bounded (room is checked before the firewall is touched); entries drop out as the kernel expires them.
import { formatAccess } from '../protocol/access.ts';
import type { Grant, GrantTarget } from './firewall.ts';

interface Entry {
  readonly target: GrantTarget;
  readonly user: string;
  expiresMs: number;
}

const targetKey = (t: GrantTarget): string => `${t.address.text}|${formatAccess(t.access)}`;

export class GrantBook {
  /** keyId hex -> target key -> entry */
  private readonly byKey = new Map<string, Map<string, Entry>>();
  private count = 0;
  private readonly maxGrants: number;
  private readonly now: () => number;

  constructor(maxGrants: number, now: () => number) {
    this.maxGrants = maxGrants;
    this.now = now;
  }

  get size(): number {
    return this.count;
  }

  /** Whether `n` more grants fit; checked before the firewall is touched, so a full book refuses rather than loses track. */
  hasRoom(n: number): boolean {
    if (this.count + n > this.maxGrants) this.prune();
    return this.count + n <= this.maxGrants;
  }

  record(keyId: string, user: string, grants: readonly Grant[]): void {
    let entries = this.byKey.get(keyId);
    if (entries === undefined) {
      entries = new Map();
      this.byKey.set(keyId, entries);
    }
    const now = this.now();
    for (const g of grants) {
      const k = targetKey(g);
      const expiresMs = now + g.ttlSeconds * 1000;
      const existing = entries.get(k);
      if (existing !== undefined) existing.expiresMs = Math.max(existing.expiresMs, expiresMs);
      else {
        entries.set(k, { target: { address: g.address, access: g.access }, user, expiresMs });
        this.count++;
      }
    }
  }

  /** Removes and returns the still-open grants earned by any of these keys. */
  take(keyIds: ReadonlySet<string>): { user: string; target: GrantTarget }[] {
    const now = this.now();
    const out: { user: string; target: GrantTarget }[] = [];
    for (const id of keyIds) {
      const entries = this.byKey.get(id);
      if (entries === undefined) continue;
      for (const e of entries.values()) if (e.expiresMs > now) out.push({ user: e.user, target: e.target });
      this.count -= entries.size;
      this.byKey.delete(id);
    }
    return out;
  }

  prune(): void {
    const now = this.now();
    for (const [id, entries] of this.byKey) {
      for (const [k, e] of entries) {
        if (e.expiresMs <= now) {
          entries.delete(k);
          this.count--;
        }
      }
      if (entries.size === 0) this.byKey.delete(id);
    }
  }
}
