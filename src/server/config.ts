// The server config file: JSON checked against schema/config.schema.json, then turned into typed values with paths resolved. Operator input; every error names file, JSON path and expectation.
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { formatAccess, parseAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import { parseHost } from '../client/invite.ts';
import type { Address } from '../protocol/address.ts';
import { DEFAULT_LIMITS, DEFAULTS, TABLE } from '../limits.ts';
import { EXIT } from '../errors.ts';
import { readJson } from '../files.ts';
import { DEFAULT_CONFIRM_PORTS, formatRange, inRange, parseRange } from '../port-range.ts';
import type { PortRange } from '../port-range.ts';
import { compileSchemaFile, invalid, schemaErrors } from '../schema.ts';
import type { ValidateFunction } from '../schema.ts';
import { isLoopback, parseMetricsListen } from './metrics-endpoint.ts';
import type { MetricsListen } from './metrics-endpoint.ts';

export type CaptureMode = 'udp' | 'pcap';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
/** Where a protected port is checked: input (after any DNAT, the input hook), forward (before any DNAT, prerouting), or both. */
export type ProtectPath = 'input' | 'forward' | 'both';

export interface ServerConfig {
  readonly file: string;
  readonly knockPort: number;
  /** The name or address users knock at (config publicHost), canonical as invitations write it. */
  readonly publicHost?: string;
  readonly listen: readonly Address[];
  /** The server's private key files (config serverKeys, or the one serverKey): a knock to any of them is accepted. */
  readonly serverKeyPaths: readonly string[];
  /** The users file; with the etcd source, the local copy of the last good signed document (users-etcd.ts). */
  readonly usersPath: string;
  /** The etcd users source, or undefined for the users file. */
  readonly etcd: EtcdSource | undefined;
  /** Trusted admin public keys: resolved file paths or key lines (admin-keys.ts reads them). */
  readonly adminKeys: readonly string[];
  readonly stateDir: string;
  readonly windowMs: number;
  readonly defaultDurationSeconds: number;
  readonly maxDurationSeconds: number;
  /** Every protected port, whatever its path, in config order. */
  readonly protect: readonly Access[];
  /** TCP ports a knock may name for its confirmation; silent except to a knock's own confirmation SYN. */
  readonly confirmPorts: PortRange;
  /** The ports checked as delivered to this host's sockets (path input or both). */
  readonly protectInput: readonly Access[];
  /** The ports checked as addressed, before any DNAT (path forward or both): Docker-published and VM-forwarded ports. */
  readonly protectForward: readonly Access[];
  readonly logLevel: LogLevel;
  readonly capture: { readonly mode: CaptureMode; readonly interfaces: readonly string[] };
  readonly table: string;
  readonly limits: {
    readonly perSourcePerSecond: number;
    readonly perSourceBurst: number;
    readonly maxSources: number;
    readonly maxReplayEntries: number;
    readonly maxGrants: number;
    readonly kernelPerSourcePerSecond: number;
    readonly kernelPerSourceBurst: number;
  };
  /** Where the Prometheus endpoint listens; undefined: no endpoint. */
  readonly metrics: MetricsListen | undefined;
}

export interface EtcdSource {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** Resolved paths of the PEM files. */
  readonly tls: { readonly ca: string; readonly cert: string | undefined; readonly key: string | undefined } | undefined;
  readonly auth: { readonly user: string; readonly passwordFile: string } | undefined;
}

/** The config as the schema guarantees it (optional keys may be absent). */
interface ConfigFile {
  knockPort?: number;
  publicHost?: string;
  listen?: string[];
  serverKey?: string;
  serverKeys?: string[];
  usersFile?: string;
  users?: { etcd: { endpoints: string[]; prefix: string; tls?: { ca: string; cert?: string; key?: string }; auth?: { user: string; passwordFile: string } } };
  adminKeys?: string[];
  stateDir?: string;
  freshnessWindowSeconds?: number;
  defaultDurationSeconds?: number;
  maxDurationSeconds?: number;
  protect: (string | { port: string; path?: ProtectPath })[];
  confirmPorts?: string;
  logLevel?: LogLevel;
  capture?: { mode?: CaptureMode; interfaces?: string[] };
  firewall?: { table?: string };
  limits?: { perSourcePerSecond?: number; perSourceBurst?: number; maxSources?: number; maxReplayEntries?: number; maxGrants?: number; kernelPerSourcePerSecond?: number; kernelPerSourceBurst?: number };
  metrics?: { listen: string; allowRemote?: boolean };
}

/** The metrics endpoint's address; a non-loopback one only with allowRemote, since it would show anyone that sesame runs. */
function metricsListen(m: ConfigFile['metrics'], file: string, base: string, problems: string[]): MetricsListen | undefined {
  if (m === undefined) return undefined;
  const listen = parseMetricsListen(m.listen, base);
  if (typeof listen === 'string') problems.push(`${file}: /metrics/listen: ${listen}`);
  else if (listen.kind === 'tcp' && !isLoopback(listen.address) && m.allowRemote !== true) {
    problems.push(`${file}: /metrics/listen: ${listen.text} is not a loopback address, and the endpoint would answer (and show that sesame runs to) anyone who reaches it: use 127.0.0.1, [::1] or unix:PATH, or set /metrics/allowRemote to true`);
  } else return listen;
  return undefined;
}

let validate: ValidateFunction<ConfigFile> | undefined;

/** Validates parsed JSON; `file` is only used in messages and to resolve relative paths. */
export function parseConfig(json: unknown, file: string): ServerConfig {
  validate ??= compileSchemaFile<ConfigFile>('config.schema.json');
  if (!validate(json)) throw invalid(schemaErrors(file, validate.errors));
  const c = json;
  const problems: string[] = [];
  const listen = (c.listen ?? ['0.0.0.0', '::']).map((text, i) => {
    const a = parseAddress(text);
    if (a === undefined) problems.push(`${file}: /listen/${i}: expected an IPv4 or IPv6 address, got "${text}"`);
    return a;
  });
  const seen = new Map<string, number>();
  const protect = c.protect.flatMap((entry, i) => {
    const [text, path, at] = typeof entry === 'string' ? [entry, 'both' as const, `/protect/${i}`] : [entry.port, entry.path ?? 'both', `/protect/${i}/port`];
    const access = parseAccess(text);
    if (access === undefined) {
      problems.push(`${file}: ${at}: expected tcp/PORT or udp/PORT with PORT 1-65535, got "${text}"`);
      return [];
    }
    const first = seen.get(formatAccess(access));
    if (first === undefined) seen.set(formatAccess(access), i);
    else problems.push(`${file}: ${at}: ${formatAccess(access)} is already listed at /protect/${first}`);
    return [{ access, path }];
  });
  const publicHost = c.publicHost === undefined ? undefined : parseHost(c.publicHost);
  if (publicHost !== undefined && !publicHost.ok) problems.push(`${file}: /publicHost: ${publicHost.reason}`);
  const range = c.confirmPorts === undefined ? { ok: true as const, value: DEFAULT_CONFIRM_PORTS } : parseRange(c.confirmPorts);
  if (!range.ok) problems.push(`${file}: /confirmPorts: ${range.why}`);
  const confirmPorts = range.ok ? range.value : DEFAULT_CONFIRM_PORTS;
  for (const { access: a } of protect) {
    if (a.proto === 'tcp' && inRange(confirmPorts, a.port)) problems.push(`${file}: /confirmPorts: ${formatRange(confirmPorts)} includes the protected port tcp/${a.port} (every packet to the range is dropped): choose another range`);
  }
  const defaultDurationSeconds = c.defaultDurationSeconds ?? DEFAULTS.defaultDurationSeconds;
  const maxDurationSeconds = c.maxDurationSeconds ?? DEFAULTS.maxDurationSeconds;
  if (defaultDurationSeconds > maxDurationSeconds) {
    problems.push(`${file}: /defaultDurationSeconds: ${defaultDurationSeconds} is more than maxDurationSeconds (${maxDurationSeconds})`);
  }
  if (c.users !== undefined && c.adminKeys === undefined) problems.push(`${file}: /adminKeys: users.etcd needs the admin public keys that sign the users document`);
  if (c.users?.etcd.tls === undefined && c.users?.etcd.endpoints.some((e) => e.startsWith('https:')) === true) problems.push(`${file}: /users/etcd/tls: https endpoints need tls.ca`);
  const base = dirname(resolve(file));
  const metrics = metricsListen(c.metrics, file, base, problems);
  if (problems.length > 0) throw invalid(problems);
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const limits = c.limits ?? {};
  return {
    file: resolve(file),
    knockPort: c.knockPort ?? DEFAULTS.knockPort,
    ...(publicHost?.ok === true ? { publicHost: publicHost.value } : {}),
    listen: listen.filter((a) => a !== undefined),
    serverKeyPaths: (c.serverKeys ?? (c.serverKey === undefined ? [] : [c.serverKey])).map(path),
    usersPath: c.usersFile === undefined ? join(path(c.stateDir ?? DEFAULTS.stateDir), ETCD_COPY) : path(c.usersFile),
    etcd: etcdSource(c.users?.etcd, path),
    // A key line stays as it is; anything else is a file next to the config.
    adminKeys: (c.adminKeys ?? []).map((k) => (/^\s*(sesame-ed25519|ssh-ed25519)\s/.test(k) ? k : path(k))),
    stateDir: path(c.stateDir ?? DEFAULTS.stateDir),
    windowMs: (c.freshnessWindowSeconds ?? DEFAULTS.freshnessWindowMs / 1000) * 1000,
    defaultDurationSeconds,
    maxDurationSeconds,
    protect: protect.map((p) => p.access),
    protectInput: protect.filter((p) => p.path !== 'forward').map((p) => p.access),
    protectForward: protect.filter((p) => p.path !== 'input').map((p) => p.access),
    confirmPorts,
    logLevel: c.logLevel ?? 'info',
    capture: { mode: c.capture?.mode ?? 'udp', interfaces: c.capture?.interfaces ?? ['any'] },
    table: c.firewall?.table ?? TABLE.defaultName,
    limits: {
      perSourcePerSecond: limits.perSourcePerSecond ?? DEFAULT_LIMITS.perSourcePerSecond,
      perSourceBurst: limits.perSourceBurst ?? DEFAULT_LIMITS.perSourceBurst,
      maxSources: limits.maxSources ?? DEFAULT_LIMITS.maxSources,
      maxReplayEntries: limits.maxReplayEntries ?? DEFAULT_LIMITS.maxReplayEntries,
      maxGrants: limits.maxGrants ?? DEFAULT_LIMITS.maxGrants,
      kernelPerSourcePerSecond: limits.kernelPerSourcePerSecond ?? DEFAULT_LIMITS.kernelPerSourcePerSecond,
      kernelPerSourceBurst: limits.kernelPerSourceBurst ?? DEFAULT_LIMITS.kernelPerSourceBurst,
    },
    metrics,
  };
}

/** The etcd source's local copy of the last good signed document, in stateDir. */
export const ETCD_COPY = 'users-etcd.signed.json';

function etcdSource(e: NonNullable<ConfigFile['users']>['etcd'] | undefined, path: (p: string) => string): EtcdSource | undefined {
  if (e === undefined) return undefined;
  return {
    endpoints: e.endpoints,
    prefix: e.prefix,
    tls: e.tls === undefined ? undefined : { ca: path(e.tls.ca), cert: e.tls.cert === undefined ? undefined : path(e.tls.cert), key: e.tls.key === undefined ? undefined : path(e.tls.key) },
    auth: e.auth === undefined ? undefined : { user: e.auth.user, passwordFile: path(e.auth.passwordFile) },
  };
}

export function loadConfig(file: string): ServerConfig {
  return parseConfig(readJson(file, 'config file', EXIT.config), file);
}
