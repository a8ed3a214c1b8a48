// Client profiles: the config file checked against src/schema/client.schema.json, and the merge flags > profile > defaults. Trusts nothing in the file.
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import { EXIT, OperatorError } from '../errors.ts';
import { jsonPath, parseJson, readOptionalText, readText } from '../files.ts';
import type { ValidateFunction } from '../schema.ts';
import { DEFAULTS, WAIT } from '../limits.ts';
import { DEFAULT_CONFIRM_PORTS, parseRange } from '../port-range.ts';
import type { PortRange } from '../port-range.ts';

/** Where the server public key comes from: a file, or the key line itself written in a profile. */
export type ServerKeySource = { readonly kind: 'file'; readonly path: string } | { readonly kind: 'inline'; readonly line: string; readonly where: string };

/** What a profile or the command line may set; every field optional, already typed and checked. */
export interface KnockOptions {
  readonly host?: string;
  readonly family?: 4 | 6;
  readonly knockPort?: number;
  readonly serverKey?: ServerKeySource;
  readonly identity?: string;
  readonly access?: readonly Access[];
  readonly durationSeconds?: number;
  readonly openAddress?: Address;
  readonly timeoutSeconds?: number;
  readonly confirmPorts?: PortRange;
  /** A profile's serverKeys after the first (a rotation): tried in order while a knock is not confirmed. */
  readonly moreServerKeys?: readonly ServerKeySource[];
}

/** The merged result. durationSeconds and openAddress stay optional: absent means "let the server decide". */
export interface KnockSettings {
  /** The profile used, if HOST named one. */
  readonly profile: string | undefined;
  readonly host: string;
  readonly family: 4 | 6 | undefined;
  readonly knockPort: number;
  readonly serverKey: ServerKeySource | undefined;
  readonly identity: string;
  readonly access: readonly Access[];
  readonly durationSeconds: number | undefined;
  readonly openAddress: Address | undefined;
  readonly timeoutSeconds: number;
  readonly confirmPorts: PortRange;
  /** Empty when --server-key is given. */
  readonly moreServerKeys: readonly ServerKeySource[];
}

export interface ClientConfig {
  readonly file: string;
  readonly profiles: ReadonlyMap<string, KnockOptions>;
}

export const DEFAULT_TIMEOUT_SECONDS = WAIT.defaultTimeoutSeconds;

/** The file format, for --help; src/schema/client.schema.json is the reference. */
export const CONFIG_HELP = `The config file is JSON (schema: src/schema/client.schema.json in the package; unknown keys are errors):
  { "profiles": { "prod": {
      "host": "prod.example.com",          host to knock at (default: the profile name)
      "family": 4,                         4 or 6
      "knockPort": ${DEFAULTS.knockPort},
      "serverKey": "prod.pub",             a file, or the "sesame-x25519 BASE64 comment" line itself; or instead
                                           "serverKeys": [KEY, ...] (a key rotation, up to 4): knocks use the first
      "identity": "~/.ssh/id_ed25519",    a private key file, a .pub whose key is in ssh-agent, or SHA256:...
      "ports": ["tcp/22", "udp/51820"],
      "durationSeconds": 60,
      "openAddress": "198.51.100.7",       see --open
      "timeoutSeconds": 5,                 see --timeout
      "confirmPorts": "62202-62217" } } }  see --confirm-ports
Relative paths in a profile are relative to the config file's directory; "~/" is your home directory.
A HOST that names no profile but is the "host" of exactly one profile uses that profile (so ssh's %h works).
"sesame profile import LINE" writes a profile from an invitation your admin gives you.`;

/** Client-side state lives under $XDG_CONFIG_HOME/sesame (default ~/.config/sesame). */
function configHome(): string {
  const xdg = process.env['XDG_CONFIG_HOME'];
  return join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'sesame');
}

export const DEFAULT_IDENTITY = (): string => join(configHome(), 'id_ed25519');

export const DEFAULT_ACCESS: readonly Access[] = [{ proto: 'tcp', port: 22 }];
export const defaultConfigPath = (): string => join(configHome(), 'config.json');

/** The file's shape as the schema guarantees it; keep in step with src/schema/client.schema.json (a test checks the keys). */
export interface ProfileEntry {
  host?: string;
  family?: 4 | 6;
  knockPort?: number;
  serverKey?: string;
  serverKeys?: string[];
  identity?: string;
  ports?: string[];
  durationSeconds?: number;
  openAddress?: string;
  timeoutSeconds?: number;
  confirmPorts?: string;
}

export interface ClientConfigFile {
  $schema?: string;
  profiles?: Record<string, ProfileEntry>;
}

export const PROFILE_KEYS = ['host', 'family', 'knockPort', 'serverKey', 'serverKeys', 'identity', 'ports', 'durationSeconds', 'openAddress', 'timeoutSeconds', 'confirmPorts'] as const;

/** The schema's propertyNames pattern for profile names (a test keeps the two equal). */
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const SERVER_KEY_LINE = /^\s*sesame-x25519\s/;

const configError = (message: string): OperatorError => new OperatorError(message, EXIT.config);

/** "~/x" -> home/x, then relative to base. */
export function expandPath(path: string, base: string): string {
  return resolve(base, path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path);
}

/** An identity is a key file (a path, expanded) or an ssh-agent key's fingerprint ("SHA256:...", kept as is). */
export const expandIdentity = (identity: string, base: string): string => (identity.startsWith('SHA256:') ? identity : expandPath(identity, base));

let validator: ValidateFunction<ClientConfigFile> | undefined;

/** Compiled once, and only when a config file exists: ajv costs tens of milliseconds at start-up. */
async function validate(): Promise<{ check: ValidateFunction<ClientConfigFile>; errors: typeof import('../schema.ts').schemaErrors }> {
  const schema = await import('../schema.ts');
  validator ??= schema.compileSchemaFile<ClientConfigFile>('client.schema.json');
  return { check: validator, errors: schema.schemaErrors };
}

/** The profile's strings as typed values; relative paths resolve against the config file's directory. */
function convert(file: string, name: string, e: ProfileEntry): KnockOptions {
  const at = (field: string): string => `${file}: ${jsonPath(`/profiles/${name.replace(/~/g, '~0')}`)}.${field}`;
  const dir = dirname(file);
  const access = e.ports?.map((text, i) => {
    const a = parseAccess(text);
    if (a === undefined) throw configError(`${at('ports')}[${i}]: port ${JSON.stringify(text)} is out of range (expected tcp/PORT or udp/PORT, PORT 1-65535)`);
    return a;
  });
  const openAddress = e.openAddress === undefined ? undefined : parseAddress(e.openAddress);
  if (e.openAddress !== undefined && openAddress === undefined) throw configError(`${at('openAddress')}: ${JSON.stringify(e.openAddress)} is not an IPv4 or IPv6 address`);
  if (e.serverKey !== undefined && e.serverKeys !== undefined) throw configError(`${at('serverKeys')}: give "serverKey" or "serverKeys", not both`);
  // Of several keys (a server key rotation) the first is the one to knock with.
  const [keyText, where] = e.serverKeys === undefined ? [e.serverKey, at('serverKey')] : [e.serverKeys[0], `${at('serverKeys')}[0]`];
  const source = (text: string, at: string): ServerKeySource => (SERVER_KEY_LINE.test(text) ? { kind: 'inline', line: text, where: at } : { kind: 'file', path: expandPath(text, dir) });
  const serverKey = keyText === undefined ? undefined : source(keyText, where);
  const moreServerKeys = (e.serverKeys ?? []).slice(1).map((text, i) => source(text, `${at('serverKeys')}[${i + 1}]`));
  const range = e.confirmPorts === undefined ? undefined : parseRange(e.confirmPorts);
  if (range?.ok === false) throw configError(`${at('confirmPorts')}: ${range.why}`);
  return {
    ...(e.host === undefined ? {} : { host: e.host }),
    ...(e.family === undefined ? {} : { family: e.family }),
    ...(e.knockPort === undefined ? {} : { knockPort: e.knockPort }),
    ...(serverKey === undefined ? {} : { serverKey }),
    ...(e.identity === undefined ? {} : { identity: expandIdentity(e.identity, dir) }),
    ...(access === undefined ? {} : { access }),
    ...(e.durationSeconds === undefined ? {} : { durationSeconds: e.durationSeconds }),
    ...(openAddress === undefined ? {} : { openAddress }),
    ...(e.timeoutSeconds === undefined ? {} : { timeoutSeconds: e.timeoutSeconds }),
    ...(range === undefined ? {} : { confirmPorts: range.value }),
    ...(moreServerKeys.length === 0 ? {} : { moreServerKeys }),
  };
}

/**
 * Reads and checks the client config. A missing default file means "no profiles"; a missing file named
 * with --config is an error. Every problem names the file, the JSON path and what was expected.
 */
export async function loadClientConfig(file: string, explicit: boolean): Promise<ClientConfig | undefined> {
  const text = explicit ? readText(file, 'config file', EXIT.config) : readOptionalText(file, 'config file', EXIT.config);
  return text === undefined ? undefined : (await checkClientConfig(parseJson(text, file, EXIT.config), file)).config;
}

/** Parsed JSON checked as loadClientConfig checks a file: the document as the schema types it, and its profiles as typed values. */
export async function checkClientConfig(data: unknown, file: string): Promise<{ doc: ClientConfigFile; config: ClientConfig }> {
  const { check, errors } = await validate();
  if (!check(data)) {
    const lines = errors(file, check.errors, 'path').slice(0, 10).map((line) => `  ${line}`);
    throw configError(`${file} is not a valid sesame client config:\n${lines.join('\n')}\n(see sesame knock --help for the format)`);
  }
  const profiles = new Map<string, KnockOptions>();
  for (const [name, entry] of Object.entries(data.profiles ?? {})) profiles.set(name, convert(file, name, entry));
  return { doc: data, config: { file, profiles } };
}

/** The profile named NAME; else the one profile whose "host" is NAME (DNS names compare without case); else none. */
function profileFor(name: string, config: ClientConfig | undefined): [string, KnockOptions] | undefined {
  const named = config?.profiles.get(name);
  if (named !== undefined) return [name, named];
  const wanted = name.toLowerCase();
  const byHost = [...(config?.profiles ?? [])].filter(([, p]) => p.host?.toLowerCase() === wanted);
  return byHost.length === 1 ? byHost[0] : undefined;
}

/**
 * Flags win over the profile for HOST (see profileFor), which wins over the defaults. A HOST with no profile is a host
 * name. Two profiles with the same "host" match neither: which one was meant is not ours to guess.
 */
export function settingsFor(hostOrProfile: string, flags: KnockOptions, config: ClientConfig | undefined): KnockSettings {
  const found = profileFor(hostOrProfile, config);
  const p: KnockOptions | undefined = found?.[1];
  return {
    profile: found?.[0],
    host: flags.host ?? p?.host ?? hostOrProfile,
    family: flags.family ?? p?.family,
    knockPort: flags.knockPort ?? p?.knockPort ?? DEFAULTS.knockPort,
    serverKey: flags.serverKey ?? p?.serverKey,
    identity: flags.identity ?? p?.identity ?? DEFAULT_IDENTITY(),
    access: flags.access ?? p?.access ?? DEFAULT_ACCESS,
    durationSeconds: flags.durationSeconds ?? p?.durationSeconds,
    openAddress: flags.openAddress ?? p?.openAddress,
    timeoutSeconds: flags.timeoutSeconds ?? p?.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
    confirmPorts: flags.confirmPorts ?? p?.confirmPorts ?? DEFAULT_CONFIRM_PORTS,
    moreServerKeys: flags.serverKey === undefined ? (p?.moreServerKeys ?? []) : [],
  };
}
