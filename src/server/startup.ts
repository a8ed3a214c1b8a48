// The daemon's start-up steps, each turning a failure into one operator error with its exit code: server keys, replay record, capture settings, the firewall table. Inputs: a validated config.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { requireTrusted } from '../files.ts';
import { self } from '../process.ts';
import { formatAccess } from '../protocol/access.ts';
import { readServerSecretKey } from '../protocol/keyfile.ts';
import type { ServerKeys } from '../protocol/keys.ts';
import type { Capture, OnPacket } from './capture.ts';
import { PcapCapture } from './capture-pcap.ts';
import { UdpCapture } from './capture-udp.ts';
import type { ServerConfig } from './config.ts';
import { revokedMarks } from './enforce.ts';
import { TableInUseError } from './firewall.ts';
import type { Firewall, TableSetup } from './firewall.ts';
import { bypasses, bypassWarning, readNatRules } from './dnat.ts';
import type { DropLog, Logger } from './log.ts';
import { listRuleset } from './nftables.ts';
import { ReplayStore } from './replay.ts';
import { establishedTo } from './sockets.ts';
import type { TokenElement } from './tokens.ts';
import type { UserTable } from './users.ts';

/** Every server key in force, each file trusted (like sshd's host keys) and readable; at start and on reload. */
export function loadServerKeys(config: ServerConfig): ServerKeys[] {
  return config.serverKeyPaths.map((path) => {
    requireTrusted(path, 'server private key', EXIT.key);
    return readServerSecretKey(path);
  });
}

/** Checks the capture's settings (an operator error if they are wrong) without opening anything yet. */
export function openCapture(config: ServerConfig, drops: DropLog): Capture {
  if (config.capture.mode === 'udp') return new UdpCapture(config.listen, config.knockPort, (reason) => drops.record(reason, undefined));
  try {
    return new PcapCapture({ interfaces: config.capture.interfaces, port: config.knockPort, onDrop: (reason) => drops.record(reason, undefined) });
  } catch (err) {
    throw new OperatorError(errorMessage(err), EXIT.usage);
  }
}

/** The replay record, loaded before anything runs: a state directory that cannot be used stops the start at once. */
export function openReplay(config: ServerConfig, now: () => number): ReplayStore {
  const dir = join(config.stateDir, 'replay');
  try {
    const replay = new ReplayStore({ dir, windowMs: config.windowMs, maxEntries: config.limits.maxReplayEntries, now });
    accessSync(dir, constants.W_OK);
    return replay;
  } catch (err) {
    throw new OperatorError(`cannot use the state directory ${config.stateDir} for the replay record: ${errorMessage(err)}`, EXIT.state);
  }
}

export async function startCapture(capture: Capture, config: ServerConfig, onPacket: OnPacket): Promise<void> {
  try {
    await capture.start(onPacket);
  } catch (err) {
    if (err instanceof OperatorError) throw err;
    throw new OperatorError(`cannot start ${config.capture.mode} capture: ${errorMessage(err)}`, EXIT.network);
  }
}

export async function setupFirewall(firewall: Firewall, config: ServerConfig, users: UserTable, tokens: readonly TokenElement[]): Promise<void> {
  const setup: TableSetup = {
    protectedPorts: config.protectInput,
    forwardPorts: config.protectForward,
    guard: { port: config.knockPort, mode: config.capture.mode, perSourcePerSecond: config.limits.kernelPerSourcePerSecond, perSourceBurst: config.limits.kernelPerSourceBurst, tokens },
    maxGrants: config.limits.maxGrants,
    confirmPorts: config.confirmPorts,
    revokedMarks: revokedMarks(users, []).marks,
    daemon: self(),
    established: establishedTo(new Set(config.protect.filter((a) => a.proto === 'tcp').map((a) => a.port))),
  };
  try {
    await firewall.setup(setup);
  } catch (err) {
    const why = errorMessage(err);
    if (err instanceof TableInUseError) throw new OperatorError(why, EXIT.firewall);
    const hint = /Operation not permitted|EPERM|EACCES/i.test(why)
      ? ' (sesame needs CAP_NET_ADMIN to manage its nftables table: run it as root or with AmbientCapabilities=CAP_NET_ADMIN, see deploy/)'
      : /ENOENT/.test(why) ? ' (is nftables installed? apt-get install nftables)' : '';
    throw new OperatorError(`cannot set up nftables table inet ${config.table}: ${why}${hint}`, EXIT.firewall);
  }
}

/** Warns (never fails) about protected ports that DNAT or redirect rules on this host take past an input-only check. */
export async function warnDnatBypasses(config: ServerConfig, log: Logger): Promise<void> {
  try {
    for (const b of bypasses(config.protect, config.protectForward, readNatRules(await listRuleset()))) {
      log.warn({ event: 'protect.dnat_bypass', port: formatAccess(b.access), rule: b.rule.where, action: b.rule.action }, bypassWarning(b));
    }
  } catch (err) {
    log.warn({ event: 'protect.dnat_unread', err: errorMessage(err) }, 'could not read the ruleset to look for DNAT rules that bypass input-only protected ports');
  }
}
