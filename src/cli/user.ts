// `sesame user add | set | list | show | invite | revoke | remove`: flags, printing and the file I/O around the document edits in server/users-edit.ts. Operator input: flags and key files (control characters refused), the users file (printed escaped).
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { userInfo } from 'node:os';
import { DEFAULT_SERVER_CONFIG, parse } from './args.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { CEILING, LOCK } from '../limits.ts';
import { withLock } from '../process.ts';
import { readJson, readText, writeFileAtomic } from '../files.ts';
import { loadSodium } from '../protocol/sodium.ts';
import { loadConfig } from '../server/config.ts';
import { parseUsers, validateUsersFile } from '../server/users.ts';
import type { UsersFile } from '../server/users.ts';
import { addKey, normalKeyLine, revokeKeys, setPolicy } from '../server/users-edit.ts';
import { invitationServer, printInvitation } from './invite.ts';
import { editEtcdUsers, readEtcdUsers } from './user-etcd.ts';
import { list, show } from './user-view.ts';
import { printable, requirePrintable } from '../text.ts';

const HELP = `usage: sesame user add NAME --key FILE_OR_LINE [--ports tcp/22,...] [--max-duration 30s] [--from CIDR,...] [--may-open-other] [--force]
                     [--host HOST [--knock-port N] [--qr]]
       sesame user set NAME [--ports LIST] [--max-duration D] [--from LIST] [--may-open-other | --no-may-open-other]
       sesame user list [--json]
       sesame user show NAME [--json]
       sesame user invite NAME [--host HOST] [--knock-port N] [--qr]
       sesame user revoke NAME [--key KEYID] [--reason TEXT] [--keep-sessions]
       sesame user remove NAME [--reason TEXT] [--keep-sessions]
  every form takes -c CONFIG (default ${DEFAULT_SERVER_CONFIG}); the users file is the config's "usersFile"
  with the config's "users": {"etcd": ...}, edits the signed document in etcd instead: add, set, revoke and
  remove sign it with --admin-key FILE (or SESAME_ADMIN_KEY=FILE), a key listed in the config's adminKeys

Edits the server's users file under an exclusive lock (a second edit waits up to ${LOCK.waitSeconds} s, then fails):
the whole result is validated, then written atomically (temp file, fsync, rename, same owner and
mode). On any problem nothing changes. A running server picks the change up within a second: it
closes the open grants of revoked keys and cuts the connections they admitted, and closes grants that
a narrowed policy no longer allows. A server that was not running does the same when it starts.
In etcd, the edit is a compare-and-swap transaction (a lost race reads and edits again); every server
that watches the prefix applies it within a second.

  add NAME          add a user, or another key to an existing user
    --key K         a public key file, or the line itself: "sesame-ed25519 BASE64 [comment]" or an
                    OpenSSH "ssh-ed25519 BASE64 [comment]" line
    --ports LIST    ports the user may open (default tcp/22; on an existing user, replaces the list)
    --max-duration D  cap on the user's grants: 90, 90s, 15m or 2h
    --from LIST     source CIDRs the knock must come from (default: any)
    --may-open-other  allow the user's knock to name another address to open (NAT)
    --force         re-add a key that was revoked (its revocation stays in the record, marked reinstated)
    --host HOST     then print the user's invitation (see invite); publicHost in the config does the same
  set NAME          change a user's policy (the flags as for add; --from "" means any source again)
  list              users, their keys (by key id) and the revocation record; --json for scripts
  show NAME         one user in detail
  invite NAME       print the user's invitation: one line "sesame-invite:1:..." holding HOST, the knock
                    port, the server's public key(s) and the user's ports, and no secret; on a terminal
                    (or with --qr) also as a QR code. The user runs "sesame profile import LINE".
    --host HOST     the name or address users knock at (the server cannot know its public name);
                    default: the config's publicHost
    --knock-port N  the knock port as users reach it (default: the config's knockPort; differs behind NAT)
    --qr            print the QR code also when stdout is not a terminal
  revoke NAME       revoke all the user's keys, or one with --key KEYID (a unique prefix of 8+ hex digits);
                    the keys move to the revocation record with time, who and --reason; their grants
                    close and the connections they admitted stop passing traffic
    --keep-sessions only refuse new knocks and connections; established ones keep working
  remove NAME       revoke all the user's keys and delete the user

Arguments and key comments may not hold control characters (C0, DEL, C1, bidirectional overrides);
list and show print any that a hand edit put in the file escaped, as \\xNN or \\u{NNNN}.
`;

export async function user(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    config: { type: 'string', short: 'c' },
    key: { type: 'string' },
    ports: { type: 'string', short: 'p' },
    'max-duration': { type: 'string' },
    from: { type: 'string' },
    'may-open-other': { type: 'boolean' },
    'no-may-open-other': { type: 'boolean' },
    force: { type: 'boolean' },
    reason: { type: 'string' },
    'keep-sessions': { type: 'boolean' },
    json: { type: 'boolean' },
    host: { type: 'string' },
    'knock-port': { type: 'string' },
    qr: { type: 'boolean' },
    'admin-key': { type: 'string' },
  }, true);
  const [action, name, ...extra] = positionals;
  // Everything given here may end up in the file and on an admin's terminal, and is echoed in errors: refused once, here.
  for (const [flag, value] of Object.entries(values)) if (typeof value === 'string') requirePrintable(`--${flag}`, value, EXIT.usage);
  positionals.forEach((p, i) => requirePrintable(i === 0 ? 'the action' : i === 1 ? 'the user NAME' : 'an argument', p, EXIT.usage));
  if (values.help === true || action === undefined) {
    process.stdout.write(HELP);
    return values.help === true ? EXIT.ok : EXIT.usage;
  }
  if (extra.length > 0) throw new OperatorError(`unexpected argument "${extra[0]}" (see sesame user --help)`, EXIT.usage);
  if (values['may-open-other'] === true && values['no-may-open-other'] === true) throw new OperatorError('--may-open-other and --no-may-open-other exclude each other', EXIT.usage);
  await loadSodium();
  const config = loadConfig(resolve(values.config ?? DEFAULT_SERVER_CONFIG));
  const usersPath = config.usersPath;
  const needName = (): string => {
    if (name === undefined) throw new OperatorError(`sesame user ${action} needs a user NAME`, EXIT.usage);
    return name;
  };
  // Everything the invitation needs from flags and key files is read before any edit: a bad --host changes nothing.
  const server = action === 'add' || action === 'invite' ? invitationServer(action, config, values) : undefined;
  if (action === 'list' || action === 'show' || action === 'invite') {
    const doc = config.etcd === undefined ? readUsers(usersPath) : await readEtcdUsers(config);
    if (action === 'invite') return printInvitation(doc, needName(), server, values.qr === true, false);
    return action === 'list' ? list(doc, values.json === true) : show(doc, needName(), values.json === true);
  }
  const maxDuration = values['max-duration'];
  const mayOpenOther = values['may-open-other'] === true ? true : values['no-may-open-other'] === true ? false : undefined;
  const policy = {
    ...(values.ports === undefined ? {} : { ports: values.ports }),
    ...(maxDuration === undefined ? {} : { maxDurationSeconds: parseDuration(maxDuration) }),
    ...(values.from === undefined ? {} : { from: values.from }),
    ...(mayOpenOther === undefined ? {} : { mayOpenOther }),
  };
  const edit = (doc: UsersFile, nowIso: string): string => {
    const by = whoAmI();
    const keepSessions = values['keep-sessions'] === true;
    switch (action) {
      case 'add':
        if (values.key === undefined) throw new OperatorError('sesame user add needs --key FILE_OR_LINE (the user\'s .pub file, or the line itself)', EXIT.usage);
        return addKey(doc, needName(), { line: keyLine(values.key), ...policy, force: values.force === true, by, nowIso });
      case 'set':
        return setPolicy(doc, needName(), policy);
      case 'revoke':
        return revokeKeys(doc, needName(), { ...(values.key === undefined ? {} : { keyPrefix: values.key }), ...(values.reason === undefined ? {} : { reason: values.reason }), removeUser: false, keepSessions, by, nowIso });
      case 'remove':
        return revokeKeys(doc, needName(), { reason: values.reason ?? 'user removed', removeUser: true, keepSessions, by, nowIso });
      default:
        throw new OperatorError(`unknown action "${action}" (add, set, list, show, revoke, remove)`, EXIT.usage);
    }
  };
  // Read, edit and replace under the lock (or in one etcd transaction): two admins at once never lose an update.
  const said = config.etcd !== undefined ? await editEtcdUsers(config, values['admin-key'], edit) : await withLock(usersPath, 'users file', () => {
    let doc: UsersFile;
    let broken: string | undefined;
    try {
      doc = readUsers(usersPath);
    } catch (err) {
      // An emergency revoke must not wait for someone to repair the file: see emergencyDoc.
      if (action !== 'revoke' || !(err instanceof OperatorError) || err.exitCode !== EXIT.config) throw err;
      doc = emergencyDoc(readJson(usersPath, 'users file', EXIT.config), needName(), err);
      broken = err.message;
    }
    const message = edit(doc, new Date().toISOString());
    if (broken === undefined) parseUsers(doc, usersPath); // the edited document must load exactly as the daemon will load it
    replaceFile(usersPath, `${JSON.stringify(doc, null, 2)}\n`);
    return broken === undefined ? message : `${message}\nwarning: ${usersPath} does not validate (below); the revocation is written and a running daemon applies it now, but keeps refusing the rest of the file until it is fixed:\n${broken}`;
  });
  process.stdout.write(`${printable(said)}\n`);
  if (action !== 'add') return EXIT.ok;
  if (server === undefined) {
    if (process.stdout.isTTY === true) process.stdout.write(`(to give ${name} the one line that sets up their client: sesame user invite ${name} --host HOST; or set publicHost in the config)\n`);
    return EXIT.ok;
  }
  return printInvitation(config.etcd === undefined ? readUsers(usersPath) : await readEtcdUsers(config), needName(), server, values.qr === true, true);
}

/**
 * A users document that fails validation, for `revoke` only: it is enough that the user's entry and the revocation
 * record have the shape revokeKeys edits; the daemon reads revocations even from a file it otherwise refuses.
 */
function emergencyDoc(json: unknown, name: string, why: OperatorError): UsersFile {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const users = isObject(json) ? json['users'] : undefined;
  const entry = isObject(users) ? users[name] : undefined;
  const keys = isObject(entry) ? entry['keys'] : undefined;
  const revoked = isObject(json) ? json['revoked'] : undefined;
  const shaped = isObject(json) && Array.isArray(keys) && keys.every((k) => isObject(k) && typeof k['key'] === 'string') && (revoked === undefined || Array.isArray(revoked));
  if (!shaped) throw new OperatorError(`cannot find user "${name}"'s keys in the broken users file, so nothing was revoked:\n${why.message}`, EXIT.config);
  return json as unknown as UsersFile;
}

/** The users document, refused if it would not load (a broken file is not edited further). */
function readUsers(usersPath: string): UsersFile {
  const doc = validateUsersFile(readJson(usersPath, 'users file', EXIT.config), usersPath);
  parseUsers(doc, usersPath);
  return doc;
}

function parseDuration(text: string): number {
  const m = /^(\d{1,6})(s|m|h)?$/.exec(text.trim());
  const seconds = m === null ? NaN : Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (!(seconds >= 1 && seconds <= CEILING.durationSeconds)) throw new OperatorError(`--max-duration: expected 1s to 24h like 90, 90s, 15m or 2h, got "${text}"`, EXIT.usage);
  return seconds;
}

/** --key: a key line as typed, or a file holding one. */
function keyLine(arg: string): string {
  if (/^\s*(sesame-ed25519|ssh-ed25519)\s/.test(arg)) return normalKeyLine(arg);
  let text: string;
  try {
    text = readText(arg, 'key file', EXIT.key);
  } catch (err) {
    throw new OperatorError(`--key: cannot read ${arg}: ${errorMessage(err)}`, EXIT.key);
  }
  return normalKeyLine(text.split('\n')[0] ?? '');
}

function whoAmI(): string {
  const sudo = process.env['SUDO_USER'];
  try {
    return sudo !== undefined && sudo !== '' ? `${sudo} (via sudo)` : userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** Cells escaped (printable) before they are measured. */
/** Atomic replace that keeps the file's owner, group and mode (the daemon reads it as another user). */
function replaceFile(path: string, text: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new OperatorError(`cannot stat ${path}: ${errorMessage(err)}`, EXIT.config);
  }
  try {
    writeFileAtomic(path, text, { mode: st.mode & 0o777, replace: true, owner: { uid: st.uid, gid: st.gid } });
  } catch (err) {
    throw new OperatorError(`cannot replace ${path}: ${errorMessage(err)}; nothing was changed`, EXIT.config);
  }
}
