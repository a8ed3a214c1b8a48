// Edits of the users document as pure functions (no I/O): add a key, revoke keys, remove a user, and the views that listings print. Input: a schema-valid document and operator values; problems are operator errors.
import { EXIT, OperatorError } from '../errors.ts';
import { formatAccess, parseAccessList } from '../protocol/access.ts';
import { parseCidr } from '../protocol/address.ts';
import { toHex } from '../protocol/bytes.ts';
import { parseUserPublicKey } from '../protocol/keyfile.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import type { UsersFile } from './users.ts';

const keyIdOf = (line: string): string => toHex(deriveKeyId(parseUserPublicKey(line).key));
const commentOf = (line: string): string => parseUserPublicKey(line).comment;

export interface AddRequest {
  /** A checked public key line (see normalKeyLine). */
  readonly line: string;
  readonly ports?: string;
  readonly maxDurationSeconds?: number;
  readonly from?: string;
  readonly mayOpenOther?: boolean;
  readonly force: boolean;
  readonly nowIso: string;
}

/** "TYPE BASE64 comment" with the comment cleaned as key files write it; throws a clear "not a user public key" error. */
export function normalKeyLine(line: string): string {
  const parsed = parseUserPublicKey(line);
  const [type = '', blob = ''] = line.trim().split(/\s+/);
  return `${type} ${blob}${parsed.comment === '' ? '' : ` ${parsed.comment}`}`;
}

/** Adds a user, or a key to an existing user; returns what to tell the operator. */
export function addKey(doc: UsersFile, name: string, r: AddRequest): string {
  const id = keyIdOf(r.line);
  for (const [other, entry] of Object.entries(doc.users)) {
    if (entry.keys.some((k) => keyIdOf(k.key) === id)) throw new OperatorError(`key ${id} is already active for user "${other}"`, EXIT.config);
  }
  const revokedAt = (doc.revoked ?? []).findIndex((x) => keyIdOf(x.key) === id);
  const record = doc.revoked?.[revokedAt];
  if (record !== undefined) {
    if (!r.force) throw new OperatorError(`key ${id} was revoked on ${record.at}${record.by === undefined ? '' : ` by ${record.by}`}${record.reason === undefined ? '' : ` (${record.reason})`}; re-adding a revoked key needs --force`, EXIT.config);
    doc.revoked?.splice(revokedAt, 1);
  }
  const ports = r.ports === undefined ? undefined : parseAccessList(r.ports).map(formatAccess);
  const from = r.from?.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const c = parseCidr(s);
    if (c === undefined) throw new OperatorError(`--from: "${s}" is not an address or CIDR like 192.0.2.0/24`, EXIT.usage);
    return c.text;
  });
  const existed = doc.users[name] !== undefined;
  const entry = doc.users[name] ?? { keys: [], ports: ['tcp/22'] };
  entry.keys.push({ key: r.line, added: r.nowIso });
  if (ports !== undefined) entry.ports = [...new Set(ports)];
  if (r.maxDurationSeconds !== undefined) entry.maxDurationSeconds = r.maxDurationSeconds;
  if (from !== undefined) entry.from = [...new Set(from)];
  if (r.mayOpenOther !== undefined) entry.mayOpenOtherAddress = r.mayOpenOther;
  doc.users[name] = entry;
  return `${existed ? 'added a key to' : 'added'} user ${name}: key ${id}, ports ${entry.ports.join(', ')}`;
}

export interface RevokeRequest {
  /** One key, by a unique key-id prefix of 8+ hex digits; all the user's keys if absent. */
  readonly keyPrefix?: string;
  readonly reason?: string;
  /** Also delete the user. */
  readonly removeUser: boolean;
  readonly by: string;
  readonly nowIso: string;
}

/** Moves keys to the revocation record (who, when, why); returns what to tell the operator. */
export function revokeKeys(doc: UsersFile, name: string, r: RevokeRequest): string {
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
  for (const k of chosen) doc.revoked.push({ key: k.key, user: name, at: r.nowIso, by: r.by, ...(r.reason === undefined ? {} : { reason: r.reason }) });
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
  return (doc.revoked ?? []).map((r) => ({ keyId: keyIdOf(r.key), comment: commentOf(r.key), user: r.user, at: r.at, by: r.by ?? '', reason: r.reason ?? '' }));
}
