// Brings the kernel in line with the users document: closes grants whose key is revoked or gone or whose policy no longer allows them, and sets the revoked connection marks. Runs at start, after each reload and after a grant that raced a revocation. Inputs: a validated users table and the kernel's own listing.
import { errorMessage } from '../errors.ts';
import { formatAccess } from '../protocol/access.ts';
import type { Firewall, LiveGrant } from './firewall.ts';
import { connectionMark } from './firewall.ts';
import type { Logger } from './log.ts';
import { grantFits } from './users-diff.ts';
import type { UserTable } from './users.ts';

export type CloseWhy = 'revoked' | 'policy';

export interface Closing {
  readonly grant: LiveGrant;
  readonly why: CloseWhy;
}

/** Grants that must close: owner revoked or unknown, or outside the owner's current policy. */
function grantsToClose(live: readonly LiveGrant[], table: UserTable, lostOpenOther: ReadonlySet<string>): Closing[] {
  const out: Closing[] = [];
  for (const grant of live) {
    const key = table.keys.get(grant.owner.keyIdHex);
    if (key === undefined || key.revoked) {
      out.push({ grant, why: 'revoked' });
      continue;
    }
    const policy = table.policy(key.user);
    if (policy === undefined || lostOpenOther.has(key.user) || !grantFits(policy, grant.address, grant.access, grant.expiresInSeconds)) out.push({ grant, why: 'policy' });
  }
  return out;
}

/**
 * Connection marks whose connections must stop: revoked keys (unless revoked with --keep-sessions), and owners of live
 * grants that the document no longer knows at all. A mark shared with an active key is left out, so a collision never
 * cuts an active key's sessions; the daemon warns about it.
 */
export function revokedMarks(table: UserTable, live: readonly LiveGrant[]): { marks: number[]; collisions: string[] } {
  const activeMarks = new Map<number, string>();
  for (const [id, k] of table.keys) if (!k.revoked) activeMarks.set(connectionMark(k.keyId), id);
  const marks = new Set<number>();
  const collisions: string[] = [];
  const consider = (mark: number, id: string): void => {
    const active = activeMarks.get(mark);
    if (active === undefined) marks.add(mark);
    else if (active !== id) collisions.push(id);
  };
  for (const [id, k] of table.keys) if (k.revoked && k.keepSessions !== true) consider(connectionMark(k.keyId), id);
  for (const g of live) if (!table.keys.has(g.owner.keyIdHex)) consider(g.owner.mark, g.owner.keyIdHex);
  return { marks: [...marks].sort((a, b) => a - b), collisions };
}

export interface SyncOptions {
  readonly lostOpenOther?: ReadonlySet<string>;
  /** Names users of keys the current table no longer lists (the table before a reload). */
  readonly previous?: UserTable;
}

/** One pass: marks first (a revoked key's connections stop at once), then the grants. Logs each closed grant. */
export async function syncKernel(firewall: Firewall, table: UserTable, log: Logger, o: SyncOptions = {}): Promise<Closing[]> {
  const live = await firewall.list();
  const { marks, collisions } = revokedMarks(table, live);
  for (const keyId of collisions) {
    log.warn({ event: 'revoke.mark_collision', keyId }, 'a revoked key shares its connection mark with an active key: its grants close, but its established connections are not cut');
  }
  await firewall.setRevokedMarks(marks);
  const closing = grantsToClose(live, table, o.lostOpenOther ?? new Set());
  if (closing.length === 0) return closing;
  await firewall.close(closing.map((c) => c.grant));
  const userOf = (id: string): string => table.keys.get(id)?.user ?? o.previous?.keys.get(id)?.user ?? '?';
  for (const { grant, why } of closing) {
    log.info({ event: 'grant.closed', user: userOf(grant.owner.keyIdHex), keyId: grant.owner.keyIdHex, address: grant.address.text, port: formatAccess(grant.access), why }, 'grant closed');
  }
  return closing;
}

/** syncKernel, with failures logged rather than thrown (a reload must not end the daemon); false if it failed. */
export async function trySyncKernel(firewall: Firewall, table: UserTable, log: Logger, o: SyncOptions = {}): Promise<boolean> {
  try {
    await syncKernel(firewall, table, log, o);
    return true;
  } catch (err) {
    log.error({ event: 'grant.close_failed', err: errorMessage(err) }, 'could not bring the firewall in line with the users file');
    return false;
  }
}
