// `sesame server --check`, like `sshd -t`: every problem that would stop the daemon or weaken it, found without starting it, one line each; exit non-zero on any. Operator input: the config and the files it names.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { errorMessage, EXIT } from '../errors.ts';
import { trustProblems } from '../files.ts';
import { self } from '../process.ts';
import { formatAccess, sameAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import type { Address } from '../protocol/address.ts';
import { readServerSecretKey } from '../protocol/keyfile.ts';
import { fingerprint } from '../protocol/keys.ts';
import { loadSodium } from '../protocol/sodium.ts';
import { PcapCapture } from '../server/capture-pcap.ts';
import { loadAdminKeys } from '../server/admin-keys.ts';
import { readEtcdCredentials } from '../server/etcd.ts';
import { readLocalCopy } from '../server/users-etcd.ts';
import type { ServerConfig } from '../server/config.ts';
import { bypasses, bypassWarning, readNatRules } from '../server/dnat.ts';
import { listRuleset, NftablesFirewall } from '../server/nftables.ts';
import { loadUsers } from '../server/users.ts';
import type { UserTable } from '../server/users.ts';

/** Binds the listen address on an ephemeral port: proves the address is this host's, even while the daemon holds the knock port. */
function bindable(address: Address): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket({ type: address.family === 4 ? 'udp4' : 'udp6', ipv6Only: address.family === 6 });
    socket.once('error', (err) => resolve(`cannot listen on ${address.text}: ${err.message}`));
    socket.bind({ address: address.text, port: 0 }, () => socket.close(() => resolve(undefined)));
  });
}

async function captureProblems(config: ServerConfig): Promise<string[]> {
  if (config.capture.mode === 'udp') return (await Promise.all(config.listen.map(bindable))).filter((p): p is string => p !== undefined);
  try {
    const capture = new PcapCapture({ interfaces: config.capture.interfaces, port: config.knockPort });
    await capture.start(() => {});
    await capture.close();
    return [];
  } catch (err) {
    return [errorMessage(err)];
  }
}

function stateProblem(stateDir: string): string | undefined {
  const dir = join(stateDir, 'replay');
  const probe = join(dir, `.sesame-check-${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(probe, 'check\n', { mode: 0o600 });
    rmSync(probe);
    return undefined;
  } catch (err) {
    return `the state directory ${stateDir} is not writable: ${errorMessage(err)}`;
  }
}

/** How a protected port is checked, when not on both paths. */
function pathNote(config: ServerConfig, a: Access): string {
  const on = (list: readonly Access[]): boolean => list.some((b) => sameAccess(a, b));
  return on(config.protectInput) && on(config.protectForward) ? '' : on(config.protectForward) ? ' (forward path only)' : ' (input path only)';
}

/** The etcd source, offline: admin keys and etcd credentials load; the local copy of the last good document, if any, opens. */
function checkEtcd(config: ServerConfig, warnings: string[]): UserTable | undefined {
  const admins = loadAdminKeys(config.adminKeys, config.file);
  if (config.etcd !== undefined) readEtcdCredentials(config.etcd);
  const copy = readLocalCopy(config, admins);
  if (copy === undefined) warnings.push(`no local copy of the users document yet (${config.usersPath}): until etcd answers, nobody can knock`);
  else if ('refused' in copy) warnings.push(`the local copy ${config.usersPath} is refused (${copy.refused}): until etcd answers, nobody can knock`);
  return copy !== undefined && 'table' in copy ? copy.table : undefined;
}

/** `daemonUid`: whose files the daemon will trust (root's and its own); default: whoever runs the check. */
export async function check(config: ServerConfig, daemonUid?: number): Promise<number> {
  await loadSodium();
  const problems: string[] = [];
  const warnings: string[] = [];
  const uid = daemonUid ?? process.getuid?.() ?? 0;
  for (const path of [config.file, ...(config.etcd === undefined ? [config.usersPath] : []), ...config.serverKeyPaths]) problems.push(...trustProblems(path, uid));
  let keyLine = '';
  for (const path of config.serverKeyPaths) {
    try {
      keyLine += `  server key ${fingerprint(readServerSecretKey(path).publicKey)} (${path})\n`;
    } catch (err) {
      problems.push(errorMessage(err));
    }
  }
  let users: UserTable | undefined;
  try {
    if (config.etcd !== undefined) users = checkEtcd(config, warnings);
    else users = loadUsers(config.usersPath);
    if (users?.users.size === 0) warnings.push(`no users in ${config.usersPath}: nobody can knock yet (sesame user add NAME --key FILE)`);
  } catch (err) {
    problems.push(...errorMessage(err).split('\n'));
  }
  const firewall = new NftablesFirewall({ table: config.table });
  try {
    await firewall.check({ protectedPorts: config.protectInput, forwardPorts: config.protectForward, maxGrants: config.limits.maxGrants, confirmPorts: config.confirmPorts, revokedMarks: [], daemon: self(), established: [] });
  } catch (err) {
    const why = errorMessage(err);
    const hint = /ENOENT/.test(why) ? ' (is nftables installed? apt-get install nftables)' : /Operation not permitted|EPERM/.test(why) ? ' (run as root, or with CAP_NET_ADMIN as the daemon does)' : '';
    problems.push(`nftables cannot set up table inet ${config.table}: ${why}${hint}`);
  } finally {
    await firewall.stop();
  }
  try {
    warnings.push(...bypasses(config.protect, config.protectForward, readNatRules(await listRuleset())).map(bypassWarning));
  } catch (err) {
    warnings.push(`could not read the ruleset to look for DNAT rules that bypass input-only protected ports: ${errorMessage(err)}`);
  }
  problems.push(...(await captureProblems(config)));
  const state = stateProblem(config.stateDir);
  if (state !== undefined) problems.push(state);
  for (const w of warnings) process.stderr.write(`sesame: warning: ${w}\n`);
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`sesame: ${p}\n`);
    process.stderr.write(`${config.file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n`);
    return EXIT.config;
  }
  const revoked = [...(users?.keys.values() ?? [])].filter((k) => k.revoked).length;
  process.stdout.write(
    `${config.file}: ok\n${keyLine}  knock port ${config.knockPort} (${config.capture.mode}${config.capture.mode === 'udp' ? ` on ${config.listen.map((a) => a.text).join(', ')}` : ` on ${config.capture.interfaces.join(', ')}`})\n` +
      `  protecting ${config.protect.map((a) => `${formatAccess(a)}${pathNote(config, a)}`).join(', ')} in table inet ${config.table}\n` +
      `  ${users?.users.size ?? 0} users, ${users?.keys.size ?? 0} keys (${revoked} revoked) in ${config.usersPath}\n` +
      `  grants ${config.defaultDurationSeconds} s by default, at most ${config.maxDurationSeconds} s; freshness window ±${config.windowMs / 1000} s\n`,
  );
  return EXIT.ok;
}
