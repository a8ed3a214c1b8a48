// What a config reload may change in a running daemon: server keys, limits, durations, log level and protected ports apply at once; the knock port, capture, table, state, users file or etcd source, admin keys and metrics endpoint need a restart. Pure functions over validated configs.
import { formatAccess } from '../protocol/access.ts';
import type { ServerConfig } from './config.ts';

/** Settings a running daemon cannot change: its socket or capture, its table, where its state is, and what its replay record was loaded with. */
const RESTART_ONLY = ['knockPort', 'listen', 'capture', 'table', 'stateDir', 'usersPath', 'etcd', 'adminKeys', 'windowMs', 'limits.maxReplayEntries', 'metrics'] as const;

type Setting = (c: ServerConfig) => unknown;

const SETTINGS: Readonly<Record<string, Setting>> = {
  serverKeys: (c) => c.serverKeyPaths,
  protect: (c) => [c.protectInput.map(formatAccess), c.protectForward.map(formatAccess)],
  confirmPorts: (c) => c.confirmPorts,
  defaultDurationSeconds: (c) => c.defaultDurationSeconds,
  maxDurationSeconds: (c) => c.maxDurationSeconds,
  logLevel: (c) => c.logLevel,
  'limits.perSourcePerSecond': (c) => c.limits.perSourcePerSecond,
  'limits.perSourceBurst': (c) => c.limits.perSourceBurst,
  'limits.maxSources': (c) => c.limits.maxSources,
  'limits.maxGrants': (c) => c.limits.maxGrants,
  'limits.kernelPerSourcePerSecond': (c) => c.limits.kernelPerSourcePerSecond,
  'limits.kernelPerSourceBurst': (c) => c.limits.kernelPerSourceBurst,
  knockPort: (c) => c.knockPort,
  listen: (c) => c.listen.map((a) => a.text),
  capture: (c) => c.capture,
  table: (c) => c.table,
  stateDir: (c) => c.stateDir,
  usersPath: (c) => c.usersPath,
  etcd: (c) => c.etcd,
  adminKeys: (c) => c.adminKeys,
  windowMs: (c) => c.windowMs,
  'limits.maxReplayEntries': (c) => c.limits.maxReplayEntries,
  metrics: (c) => c.metrics?.text ?? null,
};

export interface ConfigReload {
  /** The config to run with: the new one, except for what needs a restart, which keeps its running value. */
  readonly effective: ServerConfig;
  readonly applied: readonly string[];
  readonly needRestart: readonly string[];
  /** The table must be set up again (protected ports, kernel meter, grant map size). */
  readonly firewall: boolean;
  /** The rate limiter must be rebuilt. */
  readonly limiter: boolean;
}

export function planReload(running: ServerConfig, next: ServerConfig): ConfigReload {
  const changed = Object.entries(SETTINGS).filter(([, get]) => JSON.stringify(get(running)) !== JSON.stringify(get(next))).map(([name]) => name);
  const needRestart = changed.filter((n) => (RESTART_ONLY as readonly string[]).includes(n));
  const applied = changed.filter((n) => !needRestart.includes(n));
  const effective: ServerConfig = {
    ...next,
    knockPort: running.knockPort,
    listen: running.listen,
    capture: running.capture,
    table: running.table,
    stateDir: running.stateDir,
    usersPath: running.usersPath,
    etcd: running.etcd,
    adminKeys: running.adminKeys,
    windowMs: running.windowMs,
    limits: { ...next.limits, maxReplayEntries: running.limits.maxReplayEntries },
    metrics: running.metrics,
  };
  return {
    effective,
    applied,
    needRestart,
    firewall: applied.some((n) => n === 'protect' || n === 'confirmPorts' || n.startsWith('limits.kernel') || n === 'limits.maxGrants'),
    limiter: applied.some((n) => n === 'limits.perSourcePerSecond' || n === 'limits.perSourceBurst' || n === 'limits.maxSources'),
  };
}
