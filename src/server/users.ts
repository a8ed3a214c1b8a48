// The users file: JSON checked against schema/users.schema.json, turned into an O(1) key-id table and per-user policies. Operator input; a file with any error is refused whole.
import { parseAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseCidr } from '../protocol/address.ts';
import type { Cidr } from '../protocol/address.ts';
import { toHex } from '../protocol/bytes.ts';
import type { KeyId } from '../protocol/bytes.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import { parseUserPublicKey } from '../protocol/keyfile.ts';
import { EXIT, OperatorError } from '../errors.ts';
import { readJson } from '../files.ts';
import { compileSchemaFile, invalid, schemaErrors } from '../schema.ts';
import type { ValidateFunction } from '../schema.ts';
import type { AuthorizedKey } from './verify.ts';

/** The users file as the schema guarantees it. */
export interface UsersFile {
  $schema?: string;
  users: Record<string, UserEntry>;
  revoked?: RevokedEntry[];
}

export interface KeyEntry {
  key: string;
  added?: string;
}

export interface RevokedEntry {
  key: string;
  user: string;
  at: string;
  by?: string;
  reason?: string;
  /** Connections the key admitted keep working (sesame user revoke --keep-sessions). */
  keepSessions?: boolean;
  /** The key was re-added after this revocation: the entry is history. */
  reinstated?: { at: string; by?: string };
}

export interface UserEntry {
  keys: KeyEntry[];
  ports: string[];
  maxDurationSeconds?: number;
  from?: string[];
  mayOpenOtherAddress?: boolean;
}

export interface UserPolicy {
  readonly name: string;
  readonly ports: readonly Access[];
  readonly maxDurationSeconds: number | undefined;
  /** Empty: any source. */
  readonly from: readonly Cidr[];
  readonly mayOpenOtherAddress: boolean;
}

export interface UserTable {
  readonly lookup: (id: KeyId) => AuthorizedKey | undefined;
  readonly policy: (name: string) => UserPolicy | undefined;
  readonly keys: ReadonlyMap<string, AuthorizedKey>;
  readonly users: ReadonlyMap<string, UserPolicy>;
}

let validate: ValidateFunction<UsersFile> | undefined;

export function validateUsersFile(json: unknown, file: string): UsersFile {
  validate ??= compileSchemaFile<UsersFile>('users.schema.json');
  if (!validate(json)) throw invalid(schemaErrors(file, validate.errors));
  return json;
}

export function parseUsers(json: unknown, file: string): UserTable {
  const doc = validateUsersFile(json, file);
  const problems: string[] = [];
  const keys = new Map<string, AuthorizedKey>();
  const owner = new Map<string, string>();
  const users = new Map<string, UserPolicy>();
  const addKey = (line: string, name: string, at: string, revoked: boolean, keepSessions = false): void => {
    let parsed;
    try {
      parsed = parseUserPublicKey(line);
    } catch (err) {
      problems.push(`${file}: ${at}: ${err instanceof OperatorError ? err.message : String(err)}`);
      return;
    }
    const keyId = deriveKeyId(parsed.key);
    const id = toHex(keyId);
    const previous = owner.get(id);
    if (previous !== undefined) {
      problems.push(`${file}: ${at}: key ${id} is already listed (${previous}); a key appears once, as active or as revoked`);
      return;
    }
    owner.set(id, revoked ? `revoked, of user "${name}"` : `for user "${name}"`);
    keys.set(id, { keyId, publicKey: parsed.key, user: name, revoked, ...(keepSessions ? { keepSessions } : {}) });
  };
  // Revoked keys first, so that the same key also listed as active is reported at its active place.
  (doc.revoked ?? []).forEach((r, i) => {
    if (r.reinstated === undefined) addKey(r.key, r.user, `/revoked/${i}/key`, true, r.keepSessions === true);
  });
  for (const [name, entry] of Object.entries(doc.users)) {
    const at = `/users/${name}`;
    entry.keys.forEach((k, i) => addKey(k.key, name, `${at}/keys/${i}/key`, false));
    const ports = entry.ports.map((text, i) => {
      const a = parseAccess(text);
      if (a === undefined) problems.push(`${file}: ${at}/ports/${i}: expected tcp/PORT or udp/PORT with PORT 1-65535, got "${text}"`);
      return a;
    });
    const from = (entry.from ?? []).map((text, i) => {
      const c = parseCidr(text);
      if (c === undefined) problems.push(`${file}: ${at}/from/${i}: expected an address or CIDR like 192.0.2.0/24 or 2001:db8::/32, got "${text}"`);
      return c;
    });
    users.set(name, {
      name,
      ports: ports.filter((a) => a !== undefined),
      maxDurationSeconds: entry.maxDurationSeconds,
      from: from.filter((c) => c !== undefined),
      mayOpenOtherAddress: entry.mayOpenOtherAddress ?? false,
    });
  }
  if (problems.length > 0) throw invalid(problems);
  return { lookup: (id) => keys.get(toHex(id)), policy: (name) => users.get(name), keys, users };
}

export function loadUsers(file: string): UserTable {
  return parseUsers(readJson(file, 'users file', EXIT.config), file);
}

/**
 * Revocations that can be read from a users document that otherwise fails validation: every `revoked[]` entry whose key
 * line parses (and is not marked reinstated). A refused file still narrows access: an emergency revoke works even
 * when someone broke the file elsewhere. Never widens anything.
 */
export function revocationsIn(json: unknown): { keyIdHex: string; keepSessions: boolean }[] {
  const list = typeof json === 'object' && json !== null && 'revoked' in json && Array.isArray(json.revoked) ? (json.revoked as unknown[]) : [];
  const out: { keyIdHex: string; keepSessions: boolean }[] = [];
  for (const r of list) {
    if (typeof r !== 'object' || r === null || !('key' in r) || typeof r.key !== 'string' || ('reinstated' in r && r.reinstated !== undefined)) continue;
    try {
      out.push({ keyIdHex: toHex(deriveKeyId(parseUserPublicKey(r.key).key)), keepSessions: 'keepSessions' in r && r.keepSessions === true });
    } catch {
      // an entry that does not parse revokes nothing
    }
  }
  return out;
}

/** The table with these keys revoked (the last good table, narrowed by revocationsIn). */
export function withRevoked(table: UserTable, revoked: readonly { keyIdHex: string; keepSessions: boolean }[]): UserTable {
  const keys = new Map(table.keys);
  for (const r of revoked) {
    const k = keys.get(r.keyIdHex);
    if (k !== undefined && !k.revoked) keys.set(r.keyIdHex, { ...k, revoked: true, ...(r.keepSessions ? { keepSessions: true } : {}) });
  }
  return { lookup: (id) => keys.get(toHex(id)), policy: table.policy, keys, users: table.users };
}
