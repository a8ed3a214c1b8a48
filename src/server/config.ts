// The server config file: JSON checked against schema/config.schema.json, then turned into typed values with paths resolved. Operator input; every error names file, JSON path and expectation.
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import { DEFAULT_LIMITS, DEFAULTS, TABLE } from '../limits.ts';
import { EXIT } from '../errors.ts';
import { readJson } from '../files.ts';
import { compileSchemaFile, invalid, schemaErrors } from '../schema.ts';
import type { ValidateFunction } from '../schema.ts';

export type CaptureMode = 'udp' | 'pcap';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface ServerConfig {
  readonly file: string;
  readonly knockPort: number;
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
  readonly protect: readonly Access[];
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
  protect: string[];
  logLevel?: LogLevel;
  capture?: { mode?: CaptureMode; interfaces?: string[] };
  firewall?: { table?: string };
  limits?: { perSourcePerSecond?: number; perSourceBurst?: number; maxSources?: number; maxReplayEntries?: number; maxGrants?: number; kernelPerSourcePerSecond?: number; kernelPerSourceBurst?: number };
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
  const protect = c.protect.map((text, i) => {
    const a = parseAccess(text);
    if (a === undefined) problems.push(`${file}: /protect/${i}: expected tcp/PORT or udp/PORT with PORT 1-65535, got "${text}"`);
    return a;
  });
  const defaultDurationSeconds = c.defaultDurationSeconds ?? DEFAULTS.defaultDurationSeconds;
  const maxDurationSeconds = c.maxDurationSeconds ?? DEFAULTS.maxDurationSeconds;
  if (defaultDurationSeconds > maxDurationSeconds) {
    problems.push(`${file}: /defaultDurationSeconds: ${defaultDurationSeconds} is more than maxDurationSeconds (${maxDurationSeconds})`);
  }
  if (c.users !== undefined && c.adminKeys === undefined) problems.push(`${file}: /adminKeys: users.etcd needs the admin public keys that sign the users document`);
  if (c.users?.etcd.tls === undefined && c.users?.etcd.endpoints.some((e) => e.startsWith('https:')) === true) problems.push(`${file}: /users/etcd/tls: https endpoints need tls.ca`);
  if (problems.length > 0) throw invalid(problems);
  const base = dirname(resolve(file));
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const limits = c.limits ?? {};
  return {
    file: resolve(file),
    knockPort: c.knockPort ?? DEFAULTS.knockPort,
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
    protect: protect.filter((a) => a !== undefined),
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
