// What changed between two loads of the users document: keys added, revoked (or removed), reinstated, and policies changed. Pure functions over validated tables; the daemon logs each change and enforces it.
import { formatAccess } from '../protocol/access.ts';
import { cidrContains } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import type { Access } from '../protocol/access.ts';
import { toHex } from '../protocol/bytes.ts';
import { parseUserPublicKey } from '../protocol/keyfile.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import type { UserPolicy, UserTable, UsersFile } from './users.ts';

export type KeyChange =
  | { readonly kind: 'key.added'; readonly keyId: string; readonly user: string }
  | { readonly kind: 'key.reinstated'; readonly keyId: string; readonly user: string }
  /** Revoked in the document, or gone from it altogether (`removed`). */
  | { readonly kind: 'key.revoked'; readonly keyId: string; readonly user: string; readonly removed: boolean; readonly keepSessions: boolean };

export interface PolicyChange {
  readonly user: string;
  readonly before: UserPolicy;
  readonly after: UserPolicy;
}

const active = (t: UserTable, id: string): boolean => t.keys.get(id)?.revoked === false;

/** Key changes, in a stable order (by key id). */
export function keyChanges(before: UserTable, after: UserTable): KeyChange[] {
  const out: KeyChange[] = [];
  const ids = [...new Set([...before.keys.keys(), ...after.keys.keys()])].sort();
  for (const id of ids) {
    const was = before.keys.get(id);
    const now = after.keys.get(id);
    if (active(after, id) && !active(before, id) && now !== undefined) {
      out.push({ kind: was?.revoked === true ? 'key.reinstated' : 'key.added', keyId: id, user: now.user });
    } else if (active(before, id) && !active(after, id) && was !== undefined) {
      out.push({ kind: 'key.revoked', keyId: id, user: was.user, removed: now === undefined, keepSessions: now?.keepSessions === true });
    }
  }
  return out;
}

const policyText = (p: UserPolicy): string =>
  JSON.stringify([p.ports.map(formatAccess).sort(), p.maxDurationSeconds ?? null, p.from.map((c) => c.text).sort(), p.mayOpenOtherAddress]);

/** Users present before and after whose policy differs. */
export function policyChanges(before: UserTable, after: UserTable): PolicyChange[] {
  const out: PolicyChange[] = [];
  for (const [name, was] of before.users) {
    const now = after.users.get(name);
    if (now !== undefined && policyText(was) !== policyText(now)) out.push({ user: name, before: was, after: now });
  }
  return out;
}

/** A policy as the log shows it. */
export function policyView(p: UserPolicy): Record<string, unknown> {
  return { ports: p.ports.map(formatAccess), maxDurationSeconds: p.maxDurationSeconds ?? null, from: p.from.map((c) => c.text), mayOpenOtherAddress: p.mayOpenOtherAddress };
}

/** Whether a live grant (address, port, seconds left) still fits a user's policy; one that does not is closed. */
export function grantFits(p: UserPolicy, address: Address, access: Access, expiresInSeconds: number): boolean {
  if (!p.ports.some((a) => a.proto === access.proto && a.port === access.port)) return false;
  if (p.from.length > 0 && !p.from.some((c) => cidrContains(c, address))) return false;
  if (p.maxDurationSeconds !== undefined && expiresInSeconds > p.maxDurationSeconds) return false;
  return true;
}

/** Users who may no longer name another address to open: none of their grants is trusted to be for their own address. */
export function lostOpenOther(changes: readonly PolicyChange[]): Set<string> {
  return new Set(changes.filter((c) => c.before.mayOpenOtherAddress && !c.after.mayOpenOtherAddress).map((c) => c.user));
}

/**
 * Key ids revoked in `before` that the next document no longer lists in its revocation record (active or reinstated).
 * `sesame user` never deletes a revocation, so a document without one is built on an older document (a rollback that
 * a higher sequence would otherwise hide) and must not take effect.
 */
export function droppedRevocations(before: UserTable, next: UsersFile): string[] {
  const listed = new Set<string>();
  for (const r of next.revoked ?? []) {
    try {
      listed.add(toHex(deriveKeyId(parseUserPublicKey(r.key).key)));
    } catch {
      // a line that does not parse lists nothing (parseUsers refuses the document anyway)
    }
  }
  return [...before.keys.values()].filter((k) => k.revoked && !listed.has(toHex(k.keyId))).map((k) => toHex(k.keyId));
}
