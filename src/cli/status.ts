// `sesame status` and `sesame grant close`: live grants read from the kernel (whoever opened them, daemon running or not), and closing them with their sessions. Operator input: flags and the config file; grants come from nft's listing.
import { resolve } from 'node:path';
import { DEFAULT_SERVER_CONFIG, parse } from './args.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { commandLineOf, startTicksOf } from '../process.ts';
import { formatAccess } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import { readServerSecretKey } from '../protocol/keyfile.ts';
import { fingerprint } from '../protocol/keys.ts';
import { loadSodium } from '../protocol/sodium.ts';
import { loadConfig } from '../server/config.ts';
import type { ServerConfig } from '../server/config.ts';
import { connectionMark } from '../server/firewall.ts';
import { NftablesFirewall } from '../server/nftables.ts';
import type { TableView } from '../server/nft-read.ts';
import { loadUsers } from '../server/users.ts';
import type { UserTable } from '../server/users.ts';

const STATUS_HELP = `usage: sesame status [-c CONFIG] [--json]

Shows the live grants, read from sesame's nftables table (user, key id, address, port, time left),
and whether a daemon runs for that table. Works whether or not the daemon runs; needs CAP_NET_ADMIN
(root) to read the table. -c CONFIG defaults to ${DEFAULT_SERVER_CONFIG}.
`;

const GRANT_HELP = `usage: sesame grant close (--user NAME | --address ADDRESS) [-c CONFIG]

Closes the live grants of one user (all their keys) or for one address, and cuts the connections
sesame admitted for them, as a revocation would; the user's keys stay valid, so a new knock opens
again. Works whether or not the daemon runs; needs CAP_NET_ADMIN (root).
`;

interface Context {
  readonly config: ServerConfig;
  /** undefined when the users file cannot be loaded: grants are then shown by key id only. */
  readonly users: UserTable | undefined;
  readonly usersError: string | undefined;
  readonly firewall: NftablesFirewall;
}

async function context(configPath: string | undefined): Promise<Context> {
  await loadSodium();
  const config = loadConfig(resolve(configPath ?? DEFAULT_SERVER_CONFIG));
  let users: UserTable | undefined;
  let usersError: string | undefined;
  try {
    users = loadUsers(config.usersPath);
  } catch (err) {
    usersError = errorMessage(err);
  }
  return { config, users, usersError, firewall: new NftablesFirewall({ table: config.table }) };
}

async function readTable(c: Context): Promise<TableView> {
  try {
    return await c.firewall.read();
  } catch (err) {
    throw new OperatorError(`cannot read nftables table inet ${c.config.table}: ${errorMessage(err)}`, EXIT.firewall);
  }
}

const userOf = (c: Context, keyIdHex: string): string => c.users?.keys.get(keyIdHex)?.user ?? '?';

function duration(seconds: number): string {
  const m = Math.floor(seconds / 60);
  return m === 0 ? `${seconds}s` : `${m}m${String(seconds % 60).padStart(2, '0')}s`;
}

export async function status(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } }, false);
  if (values.help === true) {
    process.stdout.write(STATUS_HELP);
    return EXIT.ok;
  }
  const c = await context(values.config);
  const view = await readTable(c);
  const daemon = view.owners.find((p) => (startTicksOf(p.pid) ?? -1) % 2 ** 32 === p.startTicks);
  const keys = [...(c.users?.keys.values() ?? [])];
  const grants = view.grants.map((g) => ({ user: userOf(c, g.owner.keyIdHex), keyId: g.owner.keyIdHex, address: g.address.text, port: formatAccess(g.access), expiresInSeconds: g.expiresInSeconds }));
  grants.sort((a, b) => a.user.localeCompare(b.user) || a.address.localeCompare(b.address) || a.port.localeCompare(b.port));
  const report = {
    config: c.config.file,
    table: `inet ${c.config.table}`,
    tableExists: view.exists,
    daemon: daemon === undefined ? { running: false } : { running: true, pid: daemon.pid },
    serverKeys: c.config.serverKeyPaths.map((path) => {
      try {
        return fingerprint(readServerSecretKey(path).publicKey);
      } catch (err) {
        return `unreadable: ${errorMessage(err).split('\n')[0] ?? ''}`;
      }
    }),
    knockPort: c.config.knockPort,
    capture: c.config.capture.mode,
    protect: c.config.protect.map(formatAccess),
    users: c.users?.users.size ?? null,
    activeKeys: c.users === undefined ? null : keys.filter((k) => !k.revoked).length,
    revokedKeys: c.users === undefined ? null : keys.filter((k) => k.revoked).length,
    ...(c.usersError === undefined ? {} : { usersError: c.usersError }),
    grants,
  };
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return EXIT.ok;
  }
  const lines = [
    `table ${report.table}: ${view.exists ? '' : 'absent; '}daemon ${daemon === undefined ? 'not running' : `running, pid ${daemon.pid} (${commandLineOf(daemon.pid)})`}`,
    `knock port ${report.knockPort} (${report.capture}), protecting ${report.protect.join(', ')}`,
    `server key${report.serverKeys.length === 1 ? '' : 's'} ${report.serverKeys.join(', ')}`,
    c.users === undefined ? `users file ${c.config.usersPath} does not load: ${c.usersError ?? ''}` : `${report.users} users, ${report.activeKeys} active keys, ${report.revokedKeys} revoked (${c.config.usersPath})`,
    grants.length === 0 ? 'no live grants' : `${grants.length} live grant${grants.length === 1 ? '' : 's'}:`,
  ];
  const rows = [['USER', 'KEY ID', 'ADDRESS', 'PORT', 'EXPIRES IN'], ...grants.map((g) => [g.user, g.keyId.slice(0, 16), g.address, g.port, duration(g.expiresInSeconds)])];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  if (grants.length > 0) lines.push(...rows.map((r) => `  ${r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}`));
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

export async function grant(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: 'string', short: 'c' }, user: { type: 'string' }, address: { type: 'string' } }, true);
  if (values.help === true) {
    process.stdout.write(GRANT_HELP);
    return EXIT.ok;
  }
  if (positionals[0] !== 'close' || positionals.length !== 1) throw new OperatorError('expected "sesame grant close" (see sesame grant --help)', EXIT.usage);
  if ((values.user === undefined) === (values.address === undefined)) throw new OperatorError('sesame grant close needs exactly one of --user NAME or --address ADDRESS', EXIT.usage);
  const address = values.address === undefined ? undefined : parseAddress(values.address);
  if (values.address !== undefined && address === undefined) throw new OperatorError(`--address: "${values.address}" is not an IPv4 or IPv6 address`, EXIT.usage);
  const c = await context(values.config);
  if (values.user !== undefined && c.users === undefined) throw new OperatorError(`cannot find the keys of user "${values.user}": ${c.usersError ?? ''}`, EXIT.config);
  const keys = [...(c.users?.keys.entries() ?? [])].filter(([, k]) => k.user === values.user);
  if (values.user !== undefined && keys.length === 0) throw new OperatorError(`no user "${values.user}" in ${c.config.usersPath}`, EXIT.config);
  const ids = new Set(keys.map(([id]) => id));
  const marks = new Set(keys.map(([, k]) => connectionMark(k.keyId)));
  try {
    const live = await c.firewall.list();
    const closing = live.filter((g) => (address === undefined ? ids.has(g.owner.keyIdHex) : g.address.text === address.text));
    // Sessions first, so nothing slips through between closing a grant and cutting what it admitted.
    const cut = await c.firewall.cut((conn) => (address === undefined ? marks.has(conn.mark) : conn.source.text === address.text));
    await c.firewall.close(closing);
    const who = address === undefined ? `user ${values.user ?? ''}` : `address ${address.text}`;
    process.stdout.write(`${who}: closed ${closing.length} grant${closing.length === 1 ? '' : 's'}${closing.map((g) => ` (${g.address.text} ${formatAccess(g.access)})`).join('')}, cut ${cut} connection${cut === 1 ? '' : 's'}\n`);
  } catch (err) {
    if (err instanceof OperatorError) throw err;
    throw new OperatorError(`cannot change nftables table inet ${c.config.table}: ${errorMessage(err)}`, EXIT.firewall);
  } finally {
    await c.firewall.stop();
  }
  return EXIT.ok;
}
