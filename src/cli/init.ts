// `sesame server init DIR`: a server directory the daemon's user can run with (config and users readable by it, its key its own, state in /var/lib/sesame), set up once and never over an existing one. Operator input: flags and the target directory.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { hostname, userInfo } from 'node:os';
import { DEFAULT_SERVER_CONFIG, parse } from './args.ts';
import { errnoCode, errorMessage, EXIT, OperatorError } from '../errors.ts';
import type { ExitCode } from '../errors.ts';
import { printable, requirePrintable } from '../text.ts';
import { generateServerKeys } from '../protocol/keys.ts';
import { parseHost } from '../client/invite.ts';
import { writeFileAtomic } from '../files.ts';
import { formatKeyLine, KEY_TYPE, writeKeyPair } from '../protocol/keyfile.ts';
import { DEFAULTS } from '../limits.ts';
import { loadSodium } from '../protocol/sodium.ts';
import { HELP } from './server.ts';

export async function init(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'state-dir': { type: 'string' }, user: { type: 'string' }, 'public-host': { type: 'string' } }, true);
  if (values.help === true || positionals.length !== 1) {
    process.stdout.write(HELP);
    return values.help === true ? EXIT.ok : EXIT.usage;
  }
  const dir = resolve(positionals[0] ?? '');
  const stateDir = resolve(values['state-dir'] ?? DEFAULTS.stateDir);
  requirePrintable('DIR', dir, EXIT.usage);
  requirePrintable('--state-dir', stateDir, EXIT.usage);
  const publicHost = values['public-host'] === undefined ? undefined : parseHost(values['public-host']);
  if (publicHost !== undefined && !publicHost.ok) throw new OperatorError(`--public-host: ${publicHost.reason}`, EXIT.usage);
  let existing: string[] = [];
  try {
    existing = readdirSync(dir);
  } catch {
    // does not exist yet: created below
  }
  const clash = existing.filter((n) => ['config.json', 'server.key', 'server.pub', 'users.json'].includes(n));
  if (clash.length > 0) throw new OperatorError(`${dir} already holds a sesame setup (${clash.join(', ')}); not overwriting it`, EXIT.config);
  const account = daemonAccount(values.user);
  // Shared with the daemon's group, never writable by it: the daemon refuses files its own user could rewrite, except its key.
  const shared = account === undefined ? { mode: 0o600, replace: false } : { mode: 0o640, replace: false, owner: { uid: 0, gid: account.gid } };
  await loadSodium();
  const created = {
    dir: makeDir(dir, account === undefined ? 0o700 : 0o750, account === undefined ? undefined : { uid: 0, gid: account.gid }, 'directory', EXIT.config),
    state: makeDir(stateDir, 0o700, account, 'state directory', EXIT.state),
  };
  const keys = generateServerKeys();
  const comment = `sesame server ${hostname()}`;
  const [keyPath, pubPath] = [join(dir, 'server.key'), join(dir, 'server.pub')];
  writeKeyPair(keyPath, formatKeyLine(KEY_TYPE.serverSecret, keys.secretKey, comment), formatKeyLine(KEY_TYPE.serverPublic, keys.publicKey, comment), false, pubPath);
  // The one file the daemon's user owns: sesame refuses a private key that its group or others can read.
  if (account !== undefined) chownSync(keyPath, account.uid, account.gid);
  chmodSync(pubPath, 0o644);
  const config = {
    knockPort: DEFAULTS.knockPort,
    ...(publicHost === undefined ? {} : { publicHost: publicHost.value }),
    listen: ['0.0.0.0', '::'],
    serverKey: 'server.key',
    usersFile: 'users.json',
    stateDir,
    freshnessWindowSeconds: DEFAULTS.freshnessWindowMs / 1000,
    defaultDurationSeconds: DEFAULTS.defaultDurationSeconds,
    maxDurationSeconds: DEFAULTS.maxDurationSeconds,
    protect: ['tcp/22'],
    logLevel: 'info',
  };
  for (const [name, text] of [['users.json', { users: {} }], ['config.json', config]] as const) {
    writeFileAtomic(join(dir, name), `${JSON.stringify(text, null, 2)}\n`, shared);
    chmodSync(join(dir, name), shared.mode); // exact, whatever the umask
  }
  process.stdout.write(initReport(dir, stateDir, created, account, values.user !== undefined));
  return EXIT.ok;
}

/** The account the daemon will run as, looked up in the passwd database (getent: NSS too). */
export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly group: string;
}

function getent(database: 'passwd' | 'group', key: string): string[] | undefined {
  try {
    return execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]?.split(':');
  } catch {
    return undefined; // not found (exit 2), or no getent at all
  }
}

/**
 * Who init sets the files up for: --user NAME, else "sesame" when root runs it and that user exists. Undefined means
 * root-only files (or, for anyone but root, files private to whoever runs it): nobody else needs to read them.
 */
export function daemonAccount(name: string | undefined): Account | undefined {
  const isRoot = process.getuid?.() === 0;
  if (name !== undefined) {
    if (!/^[a-z_][a-z0-9_.-]{0,31}$/i.test(name)) throw new OperatorError(`--user: expected a user name, got "${printable(name)}"`, EXIT.usage);
    if (!isRoot) throw new OperatorError('--user: only root can give files to another user; run it as root, or leave --user out', EXIT.usage);
  }
  if (!isRoot) return undefined;
  const entry = getent('passwd', name ?? 'sesame');
  if (entry === undefined) {
    if (name !== undefined) throw new OperatorError(`--user: there is no user "${name}" on this host`, EXIT.usage);
    return undefined;
  }
  const [user = '', , uid = '', gid = ''] = entry;
  if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) throw new OperatorError(`user "${name ?? 'sesame'}" has a malformed passwd entry`, EXIT.config);
  if (Number(uid) === 0) return undefined;
  return { name: user, uid: Number(uid), gid: Number(gid), group: getent('group', gid)?.[0] ?? gid };
}

/** Creates a directory (parents 0755) with an exact mode and owner; false if it was already there (left as it is). */
function makeDir(path: string, mode: number, owner: { uid: number; gid: number } | undefined, what: string, exitCode: ExitCode): boolean {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    mkdirSync(path, { mode });
  } catch (err) {
    if (errnoCode(err) === 'EEXIST' && statSync(path).isDirectory()) return false;
    const hint = errnoCode(err) === 'EACCES' ? (what === 'state directory' ? ' (run it as root, or choose one with --state-dir DIR)' : ' (run it as root)') : '';
    throw new OperatorError(`cannot create the ${what} ${path}: ${errorMessage(err)}${hint}`, exitCode);
  }
  chmodSync(path, mode);
  if (owner !== undefined) chownSync(path, owner.uid, owner.gid);
  return true;
}

/** The first directory on the way to `path` (itself included) that the account cannot enter, if any. */
function blockedAt(path: string, account: Account): string | undefined {
  for (let p = path; ; p = dirname(p)) {
    const st = statSync(p);
    const bit = st.uid === account.uid ? 0o100 : st.gid === account.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return `${p} (mode 0${(st.mode & 0o777).toString(8)}, uid ${st.uid}, gid ${st.gid})`;
    if (dirname(p) === p) return undefined;
  }
}

/** What init made, who owns it, how to check it and how to run the daemon. */
function initReport(dir: string, stateDir: string, created: { dir: boolean; state: boolean }, account: Account | undefined, chosen: boolean): string {
  const config = join(dir, 'config.json');
  const me = account === undefined ? (process.getuid?.() === 0 ? 'root' : userInfo().username) : '';
  const owner = account === undefined ? { shared: `${me} 0600`, key: `${me} 0600`, pub: `${me} 0644`, state: `${me} 0700` }
    : { shared: `root:${account.group} 0640`, key: `${account.name}:${account.group} 0600`, pub: 'root 0644', state: `${account.name}:${account.group} 0700` };
  const rows: [string, string, string][] = [
    ['config.json', owner.shared, `knock port ${DEFAULTS.knockPort}, protecting tcp/22, state in ${stateDir}`],
    ['users.json', owner.shared, `no users yet: sesame user add NAME --key FILE -c ${config}`],
    ['server.key', owner.key, `the server's private key${account === undefined ? '' : ', readable by the daemon only'}`],
    ['server.pub', owner.pub, 'give this to your users'],
    [stateDir, created.state ? owner.state : '(already there)', 'the replay record'],
  ];
  const width = (i: 0 | 1): number => Math.max(...rows.map((r) => r[i].length));
  const lines = [
    `${created.dir ? `Created ${dir} (${account === undefined ? '0700' : `root:${account.group} 0750`})` : `Set up ${dir} (already there)`}${account === undefined ? `, private to ${me}:` : ` for the daemon's user ${account.name} (uid ${account.uid}):`}`,
    ...rows.map(([name, mode, what]) => `  ${name.padEnd(width(0))}  ${mode.padEnd(width(1))}  ${what}`),
  ];
  if (account !== undefined) {
    const st = statSync(stateDir);
    if (!created.state && st.uid !== account.uid) lines.push(`warning: ${stateDir} belongs to uid ${st.uid}, so ${account.name} cannot keep its replay record there: chown -R ${account.name}:${account.group} ${stateDir}`);
    for (const p of [dir, stateDir]) {
      const blocked = blockedAt(p, account);
      if (blocked !== undefined) lines.push(`warning: ${account.name} cannot reach ${p}: ${blocked} is closed to it`);
    }
    lines.push(
      `Add a user, then check it as the daemon runs (as ${account.name}, with CAP_NET_ADMIN only):`,
      `  setpriv --reuid=${account.name} --regid=${account.group} --init-groups --inh-caps=+net_admin --ambient-caps=+net_admin sesame server -c ${config} --check`,
      config === DEFAULT_SERVER_CONFIG
        ? 'Then start it with the packaged unit, which runs it just so (check first): systemctl enable --now sesame'
        : `The packaged unit reads ${DEFAULT_SERVER_CONFIG}; run this one like the check above, without --check.`,
    );
  } else if (me === 'root') {
    lines.push(
      chosen ? 'The daemon runs as root (--user):' : 'There is no "sesame" user on this host, so the daemon runs as root:',
      `  sesame server -c ${config} --check && sesame server -c ${config}`,
      ...(chosen ? [] : ['To run it unprivileged instead, install the sesame package (it creates the user) and run init again into an empty directory.']),
    );
  } else {
    lines.push(`Run the daemon as ${me} with CAP_NET_ADMIN (or init as root): sesame server -c ${config} --check`);
  }
  return `${lines.join('\n')}\n`;
}
