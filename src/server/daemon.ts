// The daemon around the packet path: loads config, keys and users (refusing to start on any error), sets up the firewall table, then feeds captured packets to the pipeline until SIGTERM/SIGINT.
import { accessSync, constants, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Capture, OnPacket } from './capture.ts';
import { PcapCapture } from './capture-pcap.ts';
import { UdpCapture } from './capture-udp.ts';
import type { ServerConfig } from './config.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { formatAccess } from '../protocol/access.ts';
import { DROP } from '../protocol/reasons.ts';
import { TableInUseError } from './firewall.ts';
import type { Firewall, TableSetup } from './firewall.ts';
import { revokedMarks, syncKernel, trySyncKernel } from './enforce.ts';
import { readServerSecretKey } from '../protocol/keyfile.ts';
import { fingerprint } from '../protocol/keys.ts';
import { createLogger, DropLog } from './log.ts';
import type { Logger } from './log.ts';
import { NftablesFirewall } from './nftables.ts';
import { handlePacket } from './pipeline.ts';
import type { PipelineDeps } from './pipeline.ts';
import { RateLimiter } from './ratelimit.ts';
import { ReplayStore } from './replay.ts';
import { loadSodium } from '../protocol/sodium.ts';
import { loadUsers, revocationsIn, withRevoked } from './users.ts';
import type { UserTable } from './users.ts';
import { keyChanges, lostOpenOther, policyChanges, policyView } from './users-diff.ts';
import { DAEMON, DROP_LOG } from '../limits.ts';
import { readJson, requireTrusted, trustProblems } from '../files.ts';
import { self } from '../process.ts';
import { establishedTo } from './sockets.ts';

export interface RunningServer {
  /** Re-reads the users file now (what SIGHUP and the file watch do). */
  readonly reload: () => Promise<void>;
  readonly stop: () => Promise<void>;
  readonly stopped: Promise<void>;
}

/** Checks the capture's settings (an operator error if they are wrong) without opening anything yet. */
function openCapture(config: ServerConfig, drops: DropLog): Capture {
  if (config.capture.mode === 'udp') return new UdpCapture(config.listen, config.knockPort, (reason) => drops.record(reason, undefined));
  try {
    return new PcapCapture({ interfaces: config.capture.interfaces, port: config.knockPort, onDrop: (reason) => drops.record(reason, undefined) });
  } catch (err) {
    throw new OperatorError(errorMessage(err), EXIT.usage);
  }
}

/** The replay record, loaded before anything runs: a state directory that cannot be used stops the start at once. */
function openReplay(config: ServerConfig, now: () => number): ReplayStore {
  const dir = join(config.stateDir, 'replay');
  try {
    const replay = new ReplayStore({ dir, windowMs: config.windowMs, maxEntries: config.limits.maxReplayEntries, now });
    accessSync(dir, constants.W_OK);
    return replay;
  } catch (err) {
    throw new OperatorError(`cannot use the state directory ${config.stateDir} for the replay record: ${errorMessage(err)}`, EXIT.state);
  }
}

async function startCapture(capture: Capture, config: ServerConfig, onPacket: OnPacket): Promise<void> {
  try {
    await capture.start(onPacket);
  } catch (err) {
    if (err instanceof OperatorError) throw err;
    throw new OperatorError(`cannot start ${config.capture.mode} capture: ${errorMessage(err)}`, EXIT.network);
  }
}

async function setupFirewall(firewall: Firewall, config: ServerConfig, users: UserTable): Promise<void> {
  const setup: TableSetup = {
    protectedPorts: config.protect,
    guard: { port: config.knockPort, mode: config.capture.mode, perSourcePerSecond: config.limits.kernelPerSourcePerSecond, perSourceBurst: config.limits.kernelPerSourceBurst },
    maxGrants: config.limits.maxGrants,
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

/** Revocations in a users file that fails validation (only from a file the daemon may trust at all). */
function revocationsInRefused(path: string): ReturnType<typeof revocationsIn> {
  if (trustProblems(path, process.getuid?.() ?? 0).length > 0) return [];
  try {
    return revocationsIn(readJson(path, 'users file', EXIT.config));
  } catch {
    return [];
  }
}

/** One audit line per change of the users document, then `user.revoked` for each key whose access ends now. */
function logChanges(log: Logger, before: UserTable, after: UserTable): void {
  const keys = keyChanges(before, after);
  for (const c of keys) {
    if (c.kind === 'key.revoked') log.info({ event: c.kind, user: c.user, keyId: c.keyId, removed: c.removed, keepSessions: c.keepSessions }, c.removed ? 'key removed from the users file' : 'key revoked');
    else log.info({ event: c.kind, user: c.user, keyId: c.keyId }, c.kind === 'key.added' ? 'key added' : 'revoked key reinstated');
  }
  for (const c of policyChanges(before, after)) log.info({ event: 'user.changed', user: c.user, before: policyView(c.before), after: policyView(c.after) }, 'user policy changed');
  for (const c of keys) if (c.kind === 'key.revoked') log.info({ event: 'user.revoked', user: c.user, keyId: c.keyId }, 'key revoked or removed');
}

export async function runServer(config: ServerConfig, log: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  // Installed first: without a handler, a SIGHUP during start-up (a log rotation, say) would end the process.
  let onHup = (): void => {};
  const hup = (): void => onHup();
  process.on('SIGHUP', hup);
  try {
    return await start(config, log, hup, (handler) => {
      onHup = handler;
    });
  } catch (err) {
    process.off('SIGHUP', hup);
    throw err;
  }
}

async function start(config: ServerConfig, log: Logger, hup: () => void, onHup: (handler: () => void) => void): Promise<RunningServer> {
  await loadSodium();
  // Like sshd: files that others could have written are not trusted with who may open what.
  requireTrusted(config.file, 'config file', EXIT.config);
  requireTrusted(config.usersPath, 'users file', EXIT.config);
  requireTrusted(config.serverKeyPath, 'server private key', EXIT.key);
  const server = readServerSecretKey(config.serverKeyPath);
  let users = loadUsers(config.usersPath);
  const now = (): number => Date.now();
  const replay = openReplay(config, now);
  const drops = new DropLog(log, { ...DROP_LOG, now });
  const capture = openCapture(config, drops);
  const firewall = new NftablesFirewall({ table: config.table });
  // On any failure from here on, leave nothing running (the nft helper would keep this process alive); the table stays.
  const abandon = async (err: unknown): Promise<never> => {
    await capture.close().catch(() => undefined);
    await firewall.stop().catch(() => undefined);
    replay.close();
    throw err;
  };
  await setupFirewall(firewall, config, users).catch(abandon);
  // Keys revoked or removed while no daemon ran, and grants a narrowed policy no longer allows, close before any knock.
  await syncKernel(firewall, users, log).catch((err: unknown) => abandon(new OperatorError(`cannot read or update nftables table inet ${config.table}: ${errorMessage(err)}`, EXIT.firewall)));
  // Kernel changes after start are serialised: a reload's listing never interleaves with another's closing.
  let kernel: Promise<unknown> = Promise.resolve();
  const serially = (task: () => Promise<void>): Promise<void> => {
    const run = kernel.then(task);
    kernel = run.catch(() => undefined);
    return run;
  };
  const deps: PipelineDeps = {
    server,
    users: () => users,
    limiter: new RateLimiter({ perSecond: config.limits.perSourcePerSecond, burst: config.limits.perSourceBurst, maxSources: config.limits.maxSources, now }),
    replay,
    firewall,
    bounds: { defaultDurationSeconds: config.defaultDurationSeconds, maxDurationSeconds: config.maxDurationSeconds },
    windowMs: config.windowMs,
    now,
    log,
    drops,
    resync: () => serially(() => trySyncKernel(firewall, users, log)),
  };

  const reload = async (): Promise<void> => {
    let next: UserTable;
    try {
      requireTrusted(config.usersPath, 'users file', EXIT.config);
      next = loadUsers(config.usersPath);
    } catch (err) {
      log.error({ event: 'users.rejected', file: config.usersPath, errors: errorMessage(err).split('\n') }, 'users file refused; keeping the last good version');
      const narrowed = revocationsInRefused(config.usersPath);
      next = withRevoked(users, narrowed);
      if (keyChanges(users, next).length === 0) return;
      log.warn({ event: 'users.revocations_applied', file: config.usersPath }, 'the refused users file revokes keys: those revocations apply now, the rest of the last good version stays');
    }
    const before = users;
    users = next; // from here on, knocks of revoked keys are refused
    log.info({ event: 'users.reloaded', users: next.users.size, keys: next.keys.size }, 'users file loaded');
    logChanges(log, before, next);
    const narrowed = lostOpenOther(policyChanges(before, next));
    await serially(() => trySyncKernel(firewall, next, log, { lostOpenOther: narrowed, previous: before }));
  };

  await startCapture(capture, config, (packet, source) => {
    try {
      handlePacket(deps, packet, source);
    } catch (err) {
      // A step that throws is a bug; one packet must not end the daemon (the ports would stay closed until a restart).
      drops.record(DROP.internalError, source, { err: errorMessage(err).slice(0, 200) });
    }
  }).catch(abandon);

  // Watch the directory: editors and `sesame user` replace the file by rename, which a watch on the file itself would miss.
  let pending: NodeJS.Timeout | undefined;
  const watcher: FSWatcher = watch(dirname(config.usersPath), (_event, name) => {
    if (name !== null && name !== basename(config.usersPath)) return;
    clearTimeout(pending);
    pending = setTimeout(() => void reload(), DAEMON.usersReloadDebounceMs);
  });
  onHup(() => void reload());

  const housekeeping = setInterval(() => drops.flush(), DAEMON.housekeepingMs);
  housekeeping.unref();
  log.info({ event: 'server.started', serverKey: fingerprint(server.publicKey), knockPort: config.knockPort, capture: config.capture.mode, listen: config.listen.map((a) => a.text), table: config.table, users: users.users.size, protect: config.protect.map(formatAccess) }, 'sesame server started');

  let resolveStopped = (): void => {};
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return stopped;
    stopping = true;
    clearInterval(housekeeping);
    clearTimeout(pending);
    watcher.close();
    process.off('SIGHUP', hup);
    await capture.close();
    await replay.durable().catch(() => {});
    replay.close();
    await kernel;
    await firewall.stop();
    drops.flush();
    log.info({ event: 'server.stopped', dropped: Object.fromEntries(drops.totals), table: config.table }, 'sesame server stopped; the table stays, so protected ports stay closed and open grants expire on their own');
    resolveStopped();
    return stopped;
  };
  return { reload, stop, stopped };
}
