// The daemon around the packet path: loads config, keys and users (refusing to start on any error), sets up the firewall table, feeds captured packets to the pipeline, and reloads the users file (or takes the etcd source's documents) and the config (what a running daemon can change) until SIGTERM/SIGINT.
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { ServerConfig } from './config.ts';
import { loadConfig } from './config.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { formatAccess } from '../protocol/access.ts';
import { DROP } from '../protocol/reasons.ts';
import { syncKernel, trySyncKernel } from './enforce.ts';
import { fingerprint } from '../protocol/keys.ts';
import type { ServerKeys } from '../protocol/keys.ts';
import { createLogger, DropLog } from './log.ts';
import type { Logger } from './log.ts';
import { fileSourceStatus, Metrics, serveMetrics } from './metrics.ts';
import type { UsersSourceStatus } from './metrics.ts';
import { countGrants } from './grant-count.ts';
import { NftablesFirewall } from './nftables.ts';
import { handlePacket } from './pipeline.ts';
import type { PipelineDeps } from './pipeline.ts';
import { RateLimiter } from './ratelimit.ts';
import { planReload } from './reload.ts';
import { loadSodium } from '../protocol/sodium.ts';
import { WIRE } from '../protocol/layout.ts';
import { everySlot, tokensAt } from './tokens.ts';
import type { TokenElement } from './tokens.ts';
import { loadServerKeys, openCapture, openReplay, setupFirewall, startCapture, warnDnatBypasses } from './startup.ts';
import { loadUsers, revocationsIn, withRevoked } from './users.ts';
import type { UserTable } from './users.ts';
import { openEtcdUsers, usersSourceStatus } from './users-etcd.ts';
import { keyChanges, lostOpenOther, policyChanges, policyView } from './users-diff.ts';
import { DAEMON, DROP_LOG, RATE_LIMIT } from '../limits.ts';
import { readJson, requireTrusted, trustProblems } from '../files.ts';

export interface RunningServer {
  /** Re-reads the users file now (what a change to it does). */
  readonly reload: () => Promise<void>;
  /** Re-reads the config file, then the users file (what SIGHUP does). */
  readonly reloadAll: () => Promise<void>;
  readonly stop: () => Promise<void>;
  readonly stopped: Promise<void>;
}

const limiterFor = (c: ServerConfig, now: () => number): RateLimiter =>
  new RateLimiter({ perSecond: c.limits.perSourcePerSecond, burst: c.limits.perSourceBurst, maxSources: c.limits.maxSources, globalPerSecond: RATE_LIMIT.globalOpensPerSecond, now });

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

async function start(initial: ServerConfig, log: Logger, hup: () => void, onHup: (handler: () => void) => void): Promise<RunningServer> {
  await loadSodium();
  let config = initial;
  // Like sshd: files that others could have written are not trusted with who may open what.
  requireTrusted(config.file, 'config file', EXIT.config);
  const fleet = config.etcd === undefined ? undefined : openEtcdUsers(config, log);
  if (fleet === undefined) requireTrusted(config.usersPath, 'users file', EXIT.config);
  let servers: readonly ServerKeys[] = loadServerKeys(config);
  let users = fleet?.initial ?? loadUsers(config.usersPath);
  const now = (): number => Date.now();
  const replay = openReplay(config, now);
  const drops = new DropLog(log, { ...DROP_LOG, now });
  const metrics = new Metrics();
  const usersFile = fileSourceStatus(now);
  const capture = openCapture(config, drops);
  const firewall = new NftablesFirewall({ table: config.table });
  // On any failure from here on, leave nothing running (the nft helper would keep this process alive); the table stays.
  const abandon = async (err: unknown): Promise<never> => {
    await capture.close().catch(() => undefined);
    await firewall.stop().catch(() => undefined);
    await fleet?.close();
    replay.close();
    throw err;
  };
  // The kernel gate's slot tokens (tokens.ts): one slot ahead, replaced every slot and when the server keys change.
  const kernelTokens = (): TokenElement[] => tokensAt(servers, now(), config.windowMs, WIRE.tokenSlotMs);
  const refreshTokens = (): Promise<void> => firewall.setTokens(kernelTokens()).catch((err: unknown) => log.error({ event: 'tokens.failed', err: errorMessage(err) }, 'could not refresh the knock port tokens: knocks fail once the installed ones expire'));
  await setupFirewall(firewall, config, users, kernelTokens()).catch(abandon);
  await warnDnatBypasses(config, log);
  // Keys revoked or removed while no daemon ran, and grants a narrowed policy no longer allows, close before any knock.
  await syncKernel(firewall, users, log).catch((err: unknown) => abandon(new OperatorError(`cannot read or update nftables table inet ${config.table}: ${errorMessage(err)}`, EXIT.firewall)));
  // Kernel changes after start are serialised: a reload's listing never interleaves with another's closing.
  let kernel: Promise<unknown> = Promise.resolve();
  const serially = <T>(task: () => Promise<T>): Promise<T> => {
    const run = kernel.then(task);
    kernel = run.catch(() => undefined);
    return run;
  };
  let deps: PipelineDeps = {
    servers: () => servers,
    users: () => users,
    limiter: limiterFor(config, now),
    replay,
    firewall,
    bounds: { defaultDurationSeconds: config.defaultDurationSeconds, maxDurationSeconds: config.maxDurationSeconds },
    windowMs: config.windowMs,
    confirmPorts: config.confirmPorts,
    now,
    log,
    drops,
    resync: () => serially(() => trySyncKernel(firewall, users, log)).then(() => undefined),
    metrics,
  };

  /** A new users table is in force: knocks see it at once, then the kernel follows. seenMs: when the change was read (revoke latency). */
  const apply = async (next: UserTable, seenMs = performance.now()): Promise<void> => {
    const before = users;
    users = next; // from here on, knocks of revoked keys are refused
    log.info({ event: 'users.reloaded', users: next.users.size, keys: next.keys.size }, 'users file loaded');
    logChanges(log, before, next);
    const narrowed = lostOpenOther(policyChanges(before, next));
    const revoking = keyChanges(before, next).some((c) => c.kind === 'key.revoked');
    const synced = await serially(() => trySyncKernel(firewall, next, log, { lostOpenOther: narrowed, previous: before }));
    if (revoking && synced) metrics.revoked(performance.now() - seenMs);
  };

  const reloadFile = async (): Promise<void> => {
    const seenMs = performance.now();
    let next: UserTable;
    try {
      requireTrusted(config.usersPath, 'users file', EXIT.config);
      next = loadUsers(config.usersPath);
      metrics.reloaded('users', true);
      usersFile.loaded();
    } catch (err) {
      metrics.reloaded('users', false);
      log.error({ event: 'users.rejected', file: config.usersPath, errors: errorMessage(err).split('\n') }, 'users file refused; keeping the last good version');
      const narrowed = revocationsInRefused(config.usersPath);
      next = withRevoked(users, narrowed);
      if (keyChanges(users, next).length === 0) return;
      log.warn({ event: 'users.revocations_applied', file: config.usersPath }, 'the refused users file revokes keys: those revocations apply now, the rest of the last good version stays');
    }
    await apply(next, seenMs);
  };
  const reload = fleet === undefined ? reloadFile : fleet.resync;

  // Server keys, limits, durations, log level and protected ports apply at once; the rest waits for a restart (logged).
  const reloadConfig = async (): Promise<void> => {
    let next: ServerConfig;
    let nextServers: ServerKeys[];
    try {
      requireTrusted(config.file, 'config file', EXIT.config);
      next = loadConfig(config.file);
      nextServers = loadServerKeys(next);
    } catch (err) {
      log.error({ event: 'config.rejected', file: config.file, errors: errorMessage(err).split('\n') }, 'config refused; keeping the running one');
      metrics.reloaded('config', false);
      return;
    }
    metrics.reloaded('config', true);
    const plan = planReload(config, next);
    if (plan.needRestart.length > 0) log.warn({ event: 'config.restart_needed', settings: plan.needRestart }, 'these settings changed but apply only after a restart');
    config = plan.effective;
    // The kernel's slot tokens follow the keys themselves: a key file replaced under the same name changes them too.
    const keysChanged = nextServers.map((k) => fingerprint(k.publicKey)).join() !== servers.map((k) => fingerprint(k.publicKey)).join();
    servers = nextServers;
    deps = { ...deps, confirmPorts: config.confirmPorts, bounds: { defaultDurationSeconds: config.defaultDurationSeconds, maxDurationSeconds: config.maxDurationSeconds }, ...(plan.limiter ? { limiter: limiterFor(config, now) } : {}) };
    if (keysChanged) await refreshTokens();
    if (plan.firewall) await serially(() => setupFirewall(firewall, config, users, kernelTokens())).catch((err: unknown) => log.error({ event: 'config.firewall_failed', err: errorMessage(err) }, 'could not apply the new protected ports or limits to the table'));
    log.info({ event: 'config.reloaded', applied: plan.applied, serverKeys: servers.map((k) => fingerprint(k.publicKey)) }, 'config reloaded');
    log.level = config.logLevel; // after the line above, which would otherwise vanish when the level goes up
  };
  // Users first: a revocation must not wait behind the config's nft work (new tokens, a new table set-up).
  const reloadAll = async (): Promise<void> => {
    await reload();
    await reloadConfig();
  };

  await startCapture(capture, config, (packet, source) => {
    try {
      handlePacket(deps, packet, source);
    } catch (err) {
      // A step that throws is a bug; one packet must not end the daemon (the ports would stay closed until a restart).
      drops.record(DROP.internalError, source, { err: errorMessage(err).slice(0, 200) });
    }
  }).catch(abandon);
  // The etcd source's own words for its state, in the metrics' terms (an outage is "disconnected"; the sequence is the version).
  const etcdStatus = (): UsersSourceStatus => {
    const e = usersSourceStatus();
    return { state: e.state === 'outage' ? 'disconnected' : e.state, lastSyncMs: e.lastSyncMs, version: e.documentVersion };
  };
  const endpoint = await serveMetrics(config.metrics, metrics, { drops: drops.totals, countGrants: () => countGrants(config.table), usersSource: fleet === undefined ? usersFile.status : etcdStatus, now, log }).catch(abandon);

  // Watch the directories: editors and `sesame user` replace files by rename, which a watch on the file itself would miss.
  const pending = new Map<string, NodeJS.Timeout>();
  const onChange = (file: string, task: () => Promise<void>) => (_event: string, name: string | null): void => {
    if (name !== null && name !== basename(file)) return;
    clearTimeout(pending.get(file));
    pending.set(file, setTimeout(() => void task(), DAEMON.usersReloadDebounceMs));
  };
  const watchers: FSWatcher[] = [...(fleet === undefined ? [watch(dirname(config.usersPath), onChange(config.usersPath, reload))] : []), watch(dirname(config.file), onChange(config.file, reloadConfig))];
  fleet?.start((next) => {
    metrics.reloaded('users', true);
    return apply(next);
  });
  onHup(() => void reloadAll());

  const housekeeping = setInterval(() => drops.flush(), DAEMON.housekeepingMs);
  housekeeping.unref();
  const stopTokens = everySlot(() => void refreshTokens(), now);
  log.info({ event: 'server.started', serverKeys: servers.map((k) => fingerprint(k.publicKey)), knockPort: config.knockPort, capture: config.capture.mode, listen: config.listen.map((a) => a.text), table: config.table, users: users.users.size, protect: config.protect.map(formatAccess), metrics: endpoint?.text }, 'sesame server started');

  let resolveStopped = (): void => {};
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return stopped;
    stopping = true;
    clearInterval(housekeeping);
    stopTokens();
    for (const t of pending.values()) clearTimeout(t);
    for (const w of watchers) w.close();
    process.off('SIGHUP', hup);
    await endpoint?.close();
    await capture.close();
    await fleet?.close();
    await replay.durable().catch(() => {});
    replay.close();
    await kernel;
    await firewall.stop();
    drops.flush();
    log.info({ event: 'server.stopped', dropped: Object.fromEntries(drops.totals), table: config.table }, 'sesame server stopped; the table stays, so protected ports stay closed and open grants expire on their own');
    resolveStopped();
    return stopped;
  };
  return { reload, reloadAll, stop, stopped };
}
