// Edits of the users document as pure functions (no I/O): add a key, revoke keys, remove a user, and the views that listings print. Input: a schema-valid document (its text unchecked: printers escape it) and operator values (arguments checked by cli/user.ts); problems are operator errors.
import { EXIT, OperatorError } from '../errors.ts';
import { formatAccess, parseAccessList } from '../protocol/access.ts';
import { parseCidr } from '../protocol/address.ts';
import { toHex } from '../protocol/bytes.ts';
import { parseUserPublicKey } from '../protocol/keyfile.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import type { UserEntry, UsersFile } from './users.ts';
import { printable, requirePrintable } from '../text.ts';

const keyIdOf = (line: string): string => toHex(deriveKeyId(parseUserPublicKey(line).key));
const commentOf = (line: string): string => parseUserPublicKey(line).comment;
/** `by` comes from the environment, not the command line, so cli/user.ts has not checked it. */
const checkEditor = (by: string): void => requirePrintable('the editing user\'s name (SUDO_USER or the login name)', by, EXIT.usage);

export interface AddRequest extends PolicyChange {
  /** A checked public key line (see normalKeyLine). */
  readonly line: string;
  readonly force: boolean;
  /** Who edits, from the environment (SUDO_USER or the login name): checked here. */
  readonly by: string;
  readonly nowIso: string;
}

/** "TYPE BASE64 comment" with the comment cleaned as key files write it; throws a clear "not a user public key" error, or one for a comment with control characters. */
export function normalKeyLine(line: string): string {
  const parsed = parseUserPublicKey(line);
  requirePrintable('the key comment', parsed.comment, EXIT.key);
  const [type = '', blob = ''] = line.trim().split(/\s+/);
  return `${type} ${blob}${parsed.comment === '' ? '' : ` ${parsed.comment}`}`;
}

/** Adds a user, or a key to an existing user; returns what to tell the operator. */
export function addKey(doc: UsersFile, name: string, r: AddRequest): string {
  checkEditor(r.by);
  const id = keyIdOf(r.line);
  for (const [other, entry] of Object.entries(doc.users)) {
    if (entry.keys.some((k) => keyIdOf(k.key) === id)) throw new OperatorError(`key ${id} is already active for user "${other}"`, EXIT.config);
  }
  // The revocation stays in the record as history, marked reinstated: who brought the key back, and when.
  const record = (doc.revoked ?? []).find((x) => x.reinstated === undefined && keyIdOf(x.key) === id);
  if (record !== undefined) {
    if (!r.force) throw new OperatorError(`key ${id} was revoked on ${printable(record.at)}${record.by === undefined ? '' : ` by ${printable(record.by)}`}${record.reason === undefined ? '' : ` (${printable(record.reason)})`}; re-adding a revoked key needs --force`, EXIT.config);
    record.reinstated = { at: r.nowIso, by: r.by };
  }
  const existed = doc.users[name] !== undefined;
  const entry = doc.users[name] ?? { keys: [], ports: ['tcp/22'] };
  entry.keys.push({ key: r.line, added: r.nowIso });
  applyPolicy(entry, r);
  doc.users[name] = entry;
  return `${existed ? 'added a key to' : 'added'} user ${name}: key ${id}${record === undefined ? '' : ' (reinstated)'}, ports ${entry.ports.join(', ')}`;
}

export interface PolicyChange {
  readonly ports?: string;
  readonly maxDurationSeconds?: number;
  readonly from?: string;
  readonly mayOpenOther?: boolean;
}

/** Changes a user's policy; returns what to tell the operator. The daemon closes the grants that no longer fit. */
export function setPolicy(doc: UsersFile, name: string, change: PolicyChange): string {
  const entry = doc.users[name];
  if (entry === undefined) throw new OperatorError(`no user "${name}" (sesame user list shows who there is)`, EXIT.config);
  if (change.ports === undefined && change.maxDurationSeconds === undefined && change.from === undefined && change.mayOpenOther === undefined) {
    throw new OperatorError('sesame user set needs at least one of --ports, --max-duration, --from, --may-open-other, --no-may-open-other', EXIT.usage);
  }
  applyPolicy(entry, change);
  return `changed user ${name}: ports ${entry.ports.join(', ')}; max duration ${entry.maxDurationSeconds === undefined ? 'server maximum' : `${entry.maxDurationSeconds} s`}; from ${(entry.from ?? []).join(', ') || 'any'}; may open other ${entry.mayOpenOtherAddress === true ? 'yes' : 'no'}`;
}

/** --from "": any source again. */
function applyPolicy(entry: UserEntry, c: PolicyChange): void {
  if (c.ports !== undefined) entry.ports = [...new Set(parseAccessList(c.ports).map(formatAccess))];
  if (c.maxDurationSeconds !== undefined) entry.maxDurationSeconds = c.maxDurationSeconds;
  if (c.from !== undefined) {
    const from = c.from.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
      const cidr = parseCidr(s);
      if (cidr === undefined) throw new OperatorError(`--from: "${s}" is not an address or CIDR like 192.0.2.0/24`, EXIT.usage);
      return cidr.text;
    });
    if (from.length === 0) delete entry.from;
    else entry.from = [...new Set(from)];
  }
  if (c.mayOpenOther !== undefined) entry.mayOpenOtherAddress = c.mayOpenOther;
}

export interface RevokeRequest {
  /** One key, by a unique key-id prefix of 8+ hex digits; all the user's keys if absent. */
  readonly keyPrefix?: string;
  readonly reason?: string;
  /** Also delete the user. */
  readonly removeUser: boolean;
  /** Connections the keys admitted keep working; only new ones are refused. */
  readonly keepSessions?: boolean;
  readonly by: string;
  readonly nowIso: string;
}

/** Moves keys to the revocation record (who, when, why); returns what to tell the operator. */
export function revokeKeys(doc: UsersFile, name: string, r: RevokeRequest): string {
  checkEditor(r.by);
  const entry = doc.users[name];
  if (entry === undefined) throw new OperatorError(`no user "${name}" (sesame user list shows who there is)`, EXIT.config);
  let chosen = entry.keys;
  if (r.keyPrefix !== undefined) {
    const prefix = r.keyPrefix.toLowerCase();
    if (!/^[0-9a-f]{8,32}$/.test(prefix)) throw new OperatorError(`--key: expected a key id (8 to 32 hex digits, see sesame user show ${name}), got "${r.keyPrefix}"`, EXIT.usage);
    chosen = entry.keys.filter((k) => keyIdOf(k.key).startsWith(prefix));
    if (chosen.length === 0) throw new OperatorError(`user "${name}" has no active key ${prefix}`, EXIT.config);
    if (chosen.length > 1) throw new OperatorError(`key id prefix ${prefix} matches ${chosen.length} keys of "${name}"; give more digits`, EXIT.config);
  }
  if (chosen.length === 0 && !r.removeUser) throw new OperatorError(`user "${name}" has no active keys to revoke`, EXIT.config);
  doc.revoked ??= [];
  for (const k of chosen) doc.revoked.push({ key: k.key, user: name, at: r.nowIso, by: r.by, ...(r.reason === undefined ? {} : { reason: r.reason }), ...(r.keepSessions === true ? { keepSessions: true } : {}) });
  entry.keys = entry.keys.filter((k) => !chosen.includes(k));
  if (r.removeUser) delete doc.users[name];
  const ids = chosen.map((k) => keyIdOf(k.key));
  return `${r.removeUser ? `removed user ${name}` : `revoked ${ids.length} key(s) of ${name}`}${ids.length > 0 ? `: ${ids.join(', ')} moved to the revocation record` : ''}`;
}

export interface UserView {
  name: string;
  keys: { keyId: string; comment: string; added?: string }[];
  ports: string[];
  from: string[];
  maxDurationSeconds?: number;
  mayOpenOtherAddress: boolean;
}

export interface RevokedView {
  keyId: string;
  comment: string;
  user: string;
  at: string;
  by: string;
  reason: string;
  reinstated?: { at: string; by?: string };
}

export function userViews(doc: UsersFile): UserView[] {
  return Object.entries(doc.users).map(([name, e]) => ({
    name,
    keys: e.keys.map((k) => ({ keyId: keyIdOf(k.key), comment: commentOf(k.key), ...(k.added === undefined ? {} : { added: k.added }) })),
    ports: e.ports,
    from: e.from ?? [],
    ...(e.maxDurationSeconds === undefined ? {} : { maxDurationSeconds: e.maxDurationSeconds }),
    mayOpenOtherAddress: e.mayOpenOtherAddress ?? false,
  }));
}

export function revokedViews(doc: UsersFile): RevokedView[] {
  return (doc.revoked ?? []).map((r) => ({ keyId: keyIdOf(r.key), comment: commentOf(r.key), user: r.user, at: r.at, by: r.by ?? '', reason: r.reason ?? '', ...(r.reinstated === undefined ? {} : { reinstated: r.reinstated }) }));
}
