// `sesame user add | list | show | revoke | remove`: edits the server's users file, validating the whole result before an atomic replace. Operator input: flags, key files and the users file.
import { closeSync, constants, fchownSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { parseAccessList } from './access.ts';
import { parseCidr } from './address.ts';
import { DEFAULT_SERVER_CONFIG, parse } from './args.ts';
import { toHex } from './bytes.ts';
import { loadConfig } from './config.ts';
import { EXIT, OperatorError } from './errors.ts';
import { deriveKeyId } from './keys.ts';
import { parseUserPublicKey } from './keyfile.ts';
import { readJsonFile } from './schema.ts';
import { loadSodium } from './sodium.ts';
import { parseUsers, validateUsersFile } from './users.ts';
import type { UsersFile } from './users.ts';

const HELP = `usage: sesame user add NAME --key FILE_OR_LINE [--ports tcp/22,...] [--max-duration 30s] [--from CIDR,...] [--may-open-other] [--force]
       sesame user list [--json]
       sesame user show NAME [--json]
       sesame user revoke NAME [--key KEYID] [--reason TEXT]
       sesame user remove NAME [--reason TEXT]
  every form takes -c CONFIG (default ${DEFAULT_SERVER_CONFIG}); the users file is the config's "usersFile"

Edits the server's users file: the whole result is validated, then written atomically (temp file,
fsync, rename, same owner and mode). On any problem nothing changes. A running server picks the
change up within a second and closes the open grants of revoked keys at once.

  add NAME          add a user, or another key to an existing user
    --key K         a public key file, or the line itself: "sesame-ed25519 BASE64 [comment]" or an
                    OpenSSH "ssh-ed25519 BASE64 [comment]" line
    --ports LIST    ports the user may open (default tcp/22; on an existing user, replaces the list)
    --max-duration D  cap on the user's grants: 90, 90s, 15m or 2h
    --from LIST     source CIDRs the knock must come from (default: any)
    --may-open-other  allow the user's knock to name another address to open (NAT)
    --force         re-add a key that was revoked (removes it from the revocation record)
  list              users, their keys (by key id) and the revocation record; --json for scripts
  show NAME         one user in detail
  revoke NAME       revoke all the user's keys, or one with --key KEYID (a unique prefix of 8+ hex digits);
                    the keys move to the revocation record with time, who and --reason
  remove NAME       revoke all the user's keys and delete the user
`;

export async function user(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    config: { type: 'string', short: 'c' },
    key: { type: 'string' },
    ports: { type: 'string', short: 'p' },
    'max-duration': { type: 'string' },
    from: { type: 'string' },
    'may-open-other': { type: 'boolean' },
    force: { type: 'boolean' },
    reason: { type: 'string' },
    json: { type: 'boolean' },
  }, true);
  const [action, name, ...extra] = positionals;
  if (values.help === true || action === undefined) {
    process.stdout.write(HELP);
    return values.help === true ? EXIT.ok : EXIT.usage;
  }
  if (extra.length > 0) throw new OperatorError(`unexpected argument "${extra[0]}" (see sesame user --help)`, EXIT.usage);
  await loadSodium();
  const usersPath = loadConfig(resolve(values.config ?? DEFAULT_SERVER_CONFIG)).usersPath;
  const doc = validateUsersFile(readJsonFile(usersPath, 'users file'), usersPath);
  parseUsers(doc, usersPath); // refuse to edit a file that is already broken
  const needName = (): string => {
    if (name === undefined) throw new OperatorError(`sesame user ${action} needs a user NAME`, EXIT.usage);
    return name;
  };
  switch (action) {
    case 'list':
      return list(doc, values.json === true);
    case 'show':
      return show(doc, needName(), values.json === true);
    case 'add': {
      if (values.key === undefined) throw new OperatorError('sesame user add needs --key FILE_OR_LINE (the user\'s .pub file, or the line itself)', EXIT.usage);
      add(doc, needName(), { key: values.key, ports: values.ports, maxDuration: values['max-duration'], from: values.from, mayOpenOther: values['may-open-other'], force: values.force === true });
      break;
    }
    case 'revoke':
      revoke(doc, needName(), values.key, values.reason, false);
      break;
    case 'remove':
      revoke(doc, needName(), undefined, values.reason ?? 'user removed', true);
      break;
    default:
      throw new OperatorError(`unknown action "${action}" (add, list, show, revoke, remove)`, EXIT.usage);
  }
  parseUsers(doc, usersPath); // the edited document must load exactly as the daemon will load it
  replaceFile(usersPath, `${JSON.stringify(doc, null, 2)}\n`);
  return EXIT.ok;
}

const idOf = (line: string): string => toHex(deriveKeyId(parseUserPublicKey(line).key));
const commentOf = (line: string): string => parseUserPublicKey(line).comment;

export function parseDuration(text: string): number {
  const m = /^(\d{1,6})(s|m|h)?$/.exec(text.trim());
  const seconds = m === null ? NaN : Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (!(seconds >= 1 && seconds <= 86_400)) throw new OperatorError(`--max-duration: expected 1s to 24h like 90, 90s, 15m or 2h, got "${text}"`, EXIT.usage);
  return seconds;
}

interface AddOptions {
  key: string;
  ports: string | undefined;
  maxDuration: string | undefined;
  from: string | undefined;
  mayOpenOther: boolean | undefined;
  force: boolean;
}

function keyLine(arg: string): string {
  const literal = /^\s*(sesame-ed25519|ssh-ed25519)\s/.test(arg);
  let line = arg;
  if (!literal) {
    try {
      line = readFileSync(arg, 'utf8').split('\n')[0] ?? '';
    } catch (err) {
      throw new OperatorError(`--key: cannot read ${arg}: ${err instanceof Error ? err.message : String(err)}`, EXIT.key);
    }
  }
  const parsed = parseUserPublicKey(line); // throws a clear "not a user public key" error
  return `${line.trim().split(/\s+/)[0]} ${line.trim().split(/\s+/)[1]}${parsed.comment === '' ? '' : ` ${parsed.comment}`}`;
}

function add(doc: UsersFile, name: string, o: AddOptions): void {
  const line = keyLine(o.key);
  const id = idOf(line);
  for (const [other, entry] of Object.entries(doc.users)) {
    if (entry.keys.some((k) => idOf(k.key) === id)) throw new OperatorError(`key ${id} is already active for user "${other}"`, EXIT.config);
  }
  const revokedAt = (doc.revoked ?? []).findIndex((r) => idOf(r.key) === id);
  const record = doc.revoked?.[revokedAt];
  if (record !== undefined) {
    if (!o.force) throw new OperatorError(`key ${id} was revoked on ${record.at}${record.by === undefined ? '' : ` by ${record.by}`}${record.reason === undefined ? '' : ` (${record.reason})`}; re-adding a revoked key needs --force`, EXIT.config);
    doc.revoked?.splice(revokedAt, 1);
  }
  const ports = o.ports === undefined ? undefined : parseAccessList(o.ports).map((a) => `${a.proto}/${a.port}`);
  const from = o.from?.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const c = parseCidr(s);
    if (c === undefined) throw new OperatorError(`--from: "${s}" is not an address or CIDR like 192.0.2.0/24`, EXIT.usage);
    return c.text;
  });
  const existed = doc.users[name] !== undefined;
  const entry = doc.users[name] ?? { keys: [], ports: ['tcp/22'] };
  entry.keys.push({ key: line, added: new Date().toISOString() });
  if (ports !== undefined) entry.ports = [...new Set(ports)];
  if (o.maxDuration !== undefined) entry.maxDurationSeconds = parseDuration(o.maxDuration);
  if (from !== undefined) entry.from = [...new Set(from)];
  if (o.mayOpenOther !== undefined) entry.mayOpenOtherAddress = o.mayOpenOther;
  doc.users[name] = entry;
  process.stdout.write(`${existed ? 'added a key to' : 'added'} user ${name}: key ${id}, ports ${entry.ports.join(', ')}\n`);
}

function revoke(doc: UsersFile, name: string, keyPrefix: string | undefined, reason: string | undefined, removeUser: boolean): void {
  const entry = doc.users[name];
  if (entry === undefined) throw new OperatorError(`no user "${name}" (sesame user list shows who there is)`, EXIT.config);
  let chosen = entry.keys;
  if (keyPrefix !== undefined) {
    const prefix = keyPrefix.toLowerCase();
    if (!/^[0-9a-f]{8,32}$/.test(prefix)) throw new OperatorError(`--key: expected a key id (8 to 32 hex digits, see sesame user show ${name}), got "${keyPrefix}"`, EXIT.usage);
    chosen = entry.keys.filter((k) => idOf(k.key).startsWith(prefix));
    if (chosen.length === 0) throw new OperatorError(`user "${name}" has no active key ${prefix}`, EXIT.config);
    if (chosen.length > 1) throw new OperatorError(`key id prefix ${prefix} matches ${chosen.length} keys of "${name}"; give more digits`, EXIT.config);
  }
  if (chosen.length === 0 && !removeUser) throw new OperatorError(`user "${name}" has no active keys to revoke`, EXIT.config);
  const at = new Date().toISOString();
  const by = whoAmI();
  doc.revoked ??= [];
  for (const k of chosen) doc.revoked.push({ key: k.key, user: name, at, by, ...(reason === undefined ? {} : { reason }) });
  entry.keys = entry.keys.filter((k) => !chosen.includes(k));
  if (removeUser) delete doc.users[name];
  const ids = chosen.map((k) => idOf(k.key));
  process.stdout.write(`${removeUser ? `removed user ${name}` : `revoked ${ids.length} key(s) of ${name}`}${ids.length > 0 ? `: ${ids.join(', ')} moved to the revocation record` : ''}\n`);
}

function whoAmI(): string {
  const sudo = process.env['SUDO_USER'];
  try {
    return sudo !== undefined && sudo !== '' ? `${sudo} (via sudo)` : userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

interface UserView {
  name: string;
  keys: { keyId: string; comment: string; added?: string }[];
  ports: string[];
  from: string[];
  maxDurationSeconds?: number;
  mayOpenOtherAddress: boolean;
}

function views(doc: UsersFile): UserView[] {
  return Object.entries(doc.users).map(([name, e]) => ({
    name,
    keys: e.keys.map((k) => ({ keyId: idOf(k.key), comment: commentOf(k.key), ...(k.added === undefined ? {} : { added: k.added }) })),
    ports: e.ports,
    from: e.from ?? [],
    ...(e.maxDurationSeconds === undefined ? {} : { maxDurationSeconds: e.maxDurationSeconds }),
    mayOpenOtherAddress: e.mayOpenOtherAddress ?? false,
  }));
}

const revokedViews = (doc: UsersFile) => (doc.revoked ?? []).map((r) => ({ keyId: idOf(r.key), comment: commentOf(r.key), user: r.user, at: r.at, by: r.by ?? '', reason: r.reason ?? '' }));

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function list(doc: UsersFile, json: boolean): number {
  if (json) {
    process.stdout.write(`${JSON.stringify({ users: views(doc), revoked: revokedViews(doc) }, null, 2)}\n`);
    return EXIT.ok;
  }
  const rows = [['USER', 'STATUS', 'KEYS', 'PORTS', 'MAX', 'FROM']];
  for (const v of views(doc)) {
    rows.push([v.name, v.keys.length > 0 ? 'active' : 'no keys', v.keys.map((k) => k.keyId.slice(0, 12)).join(',') || '-', v.ports.join(','), v.maxDurationSeconds === undefined ? '-' : `${v.maxDurationSeconds}s`, v.from.join(',') || 'any']);
  }
  process.stdout.write(`${table(rows)}\n`);
  const revoked = revokedViews(doc);
  if (revoked.length > 0) {
    process.stdout.write(`\nrevoked keys:\n${table([['KEY', 'USER', 'AT', 'BY', 'REASON'], ...revoked.map((r) => [r.keyId.slice(0, 12), r.user, r.at, r.by, r.reason])])}\n`);
  }
  return EXIT.ok;
}

function show(doc: UsersFile, name: string, json: boolean): number {
  const v = views(doc).find((u) => u.name === name);
  if (v === undefined) throw new OperatorError(`no user "${name}" (sesame user list shows who there is)`, EXIT.config);
  const revoked = revokedViews(doc).filter((r) => r.user === name);
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...v, revoked }, null, 2)}\n`);
    return EXIT.ok;
  }
  const lines = [
    `user ${v.name}`,
    `  ports         ${v.ports.join(', ')}`,
    `  max duration  ${v.maxDurationSeconds === undefined ? 'server maximum' : `${v.maxDurationSeconds} s`}`,
    `  from          ${v.from.join(', ') || 'any source'}`,
    `  open other    ${v.mayOpenOtherAddress ? 'yes (may name another address to open)' : 'no'}`,
    `  keys          ${v.keys.length === 0 ? 'none active' : ''}`,
    ...v.keys.map((k) => `    ${k.keyId}  ${k.comment}${k.added === undefined ? '' : `  (added ${k.added})`}`),
    ...(revoked.length === 0 ? [] : ['  revoked', ...revoked.map((r) => `    ${r.keyId}  ${r.comment}  ${r.at} by ${r.by}${r.reason === '' ? '' : `: ${r.reason}`}`)]),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

/** Atomic replace that keeps the file's owner, group and mode (the daemon reads it as another user). */
function replaceFile(path: string, text: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new OperatorError(`cannot stat ${path}: ${err instanceof Error ? err.message : String(err)}`, EXIT.config);
  }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, st.mode & 0o777);
  } catch (err) {
    throw new OperatorError(`cannot write next to ${path} (${err instanceof Error ? err.message : String(err)}); nothing was changed`, EXIT.config);
  }
  try {
    try {
      if (process.getuid?.() === 0) fchownSync(fd, st.uid, st.gid);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw new OperatorError(`cannot replace ${path}: ${err instanceof Error ? err.message : String(err)}; nothing was changed`, EXIT.config);
  }
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
