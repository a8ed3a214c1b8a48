// Client profiles: the config file checked against src/schema/client.schema.json, and the merge flags > profile > defaults. Trusts nothing in the file.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseAccess } from './access.ts';
import type { Access } from './access.ts';
import { parseAddress } from './address.ts';
import type { Address } from './address.ts';
import { configHome, DEFAULT_IDENTITY } from './args.ts';
import { EXIT, OperatorError } from './errors.ts';
import { DEFAULTS, WAIT } from './limits.ts';

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
      "serverKey": "prod.pub",             a file, or the "sesame-x25519 BASE64 comment" line itself
      "identity": "~/.config/sesame/id_ed25519",
      "ports": ["tcp/22", "udp/51820"],
      "durationSeconds": 60,
      "openAddress": "198.51.100.7",       see --open
      "timeoutSeconds": 5 } } }            see --timeout
Relative paths in a profile are relative to the config file's directory; "~/" is your home directory.`;

export const DEFAULT_ACCESS: readonly Access[] = [{ proto: 'tcp', port: 22 }];
export const defaultConfigPath = (): string => join(configHome(), 'config.json');

/** The file's shape as the schema guarantees it; keep in step with src/schema/client.schema.json (a test checks the keys). */
interface ProfileEntry {
  host?: string;
  family?: 4 | 6;
  knockPort?: number;
  serverKey?: string;
  identity?: string;
  ports?: string[];
  durationSeconds?: number;
  openAddress?: string;
  timeoutSeconds?: number;
}

interface ConfigFile {
  $schema?: string;
  profiles?: Record<string, ProfileEntry>;
}

export const PROFILE_KEYS = ['host', 'family', 'knockPort', 'serverKey', 'identity', 'ports', 'durationSeconds', 'openAddress', 'timeoutSeconds'] as const;

const SERVER_KEY_LINE = /^\s*sesame-x25519\s/;

const configError = (message: string): OperatorError => new OperatorError(message, EXIT.config);

/** "~/x" -> home/x, then relative to base. */
export function expandPath(path: string, base: string): string {
  return resolve(base, path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path);
}

let validator: ValidateFunction<ConfigFile> | undefined;

/** Compiled once, and only when a config file exists: ajv costs tens of milliseconds at start-up. */
async function validate(): Promise<ValidateFunction<ConfigFile>> {
  if (validator === undefined) {
    const { Ajv } = await import('ajv');
    const schema: unknown = JSON.parse(readFileSync(new URL('../../src/schema/client.schema.json', import.meta.url), 'utf8'));
    if (typeof schema !== 'object' || schema === null) throw new Error('client.schema.json is not a JSON object');
    validator = new Ajv({ strict: true, allErrors: true, verbose: true, validateSchema: false }).compile<ConfigFile>(schema);
  }
  return validator;
}

/** JSON pointer "/profiles/prod/ports/0" -> "profiles.prod.ports[0]". */
export function jsonPath(pointer: string): string {
  if (pointer === '') return '(top level)';
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function allowedKeys(schema: unknown): string[] {
  if (typeof schema !== 'object' || schema === null || !('properties' in schema)) return [];
  const props = schema.properties;
  return typeof props === 'object' && props !== null ? Object.keys(props) : [];
}

const descriptionOf = (schema: unknown): string | undefined =>
  typeof schema === 'object' && schema !== null && 'description' in schema && typeof schema.description === 'string' ? schema.description : undefined;

/** One ajv error as "path: problem (expected ...)", the expectation taken from the schema's own description. */
function explain(e: ErrorObject): string {
  const at = jsonPath(e.instancePath);
  const p: Record<string, unknown> = e.params;
  if (e.keyword === 'additionalProperties') {
    const key = String(p['additionalProperty']).replace(/~/g, '~0').replace(/\//g, '~1');
    return `${jsonPath(`${e.instancePath}/${key}`)}: unknown key (allowed here: ${allowedKeys(e.parentSchema).join(', ')})`;
  }
  if (e.keyword === 'propertyNames') return `${at}: ${JSON.stringify(p['propertyName'])} is not a valid name (expected ${descriptionOf(e.schema) ?? 'a valid name'})`;
  if (e.keyword === 'enum' && Array.isArray(p['allowedValues'])) return `${at}: must be one of ${p['allowedValues'].map((v) => JSON.stringify(v)).join(', ')}`;
  const expected = descriptionOf(e.parentSchema);
  return `${at}: ${e.message ?? e.keyword}${expected === undefined ? '' : ` (expected ${expected})`}`;
}

function readConfigText(file: string, explicit: boolean): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : '';
    if (code === 'ENOENT' && !explicit) return undefined;
    if (code === 'ENOENT') throw configError(`config file ${file} does not exist`);
    throw configError(`cannot read config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
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
  const serverKey: ServerKeySource | undefined =
    e.serverKey === undefined ? undefined : SERVER_KEY_LINE.test(e.serverKey) ? { kind: 'inline', line: e.serverKey, where: at('serverKey') } : { kind: 'file', path: expandPath(e.serverKey, dir) };
  return {
    ...(e.host === undefined ? {} : { host: e.host }),
    ...(e.family === undefined ? {} : { family: e.family }),
    ...(e.knockPort === undefined ? {} : { knockPort: e.knockPort }),
    ...(serverKey === undefined ? {} : { serverKey }),
    ...(e.identity === undefined ? {} : { identity: expandPath(e.identity, dir) }),
    ...(access === undefined ? {} : { access }),
    ...(e.durationSeconds === undefined ? {} : { durationSeconds: e.durationSeconds }),
    ...(openAddress === undefined ? {} : { openAddress }),
    ...(e.timeoutSeconds === undefined ? {} : { timeoutSeconds: e.timeoutSeconds }),
  };
}

/**
 * Reads and checks the client config. A missing default file means "no profiles"; a missing file named
 * with --config is an error. Every problem names the file, the JSON path and what was expected.
 */
export async function loadConfig(file: string, explicit: boolean): Promise<ClientConfig | undefined> {
  const text = readConfigText(file, explicit);
  if (text === undefined) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw configError(`${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const check = await validate();
  if (!check(data)) {
    // Errors inside propertyNames carry propertyName and repeat the propertyNames error: keep the one that names the key.
    const lines = (check.errors ?? []).filter((e) => e.propertyName === undefined).slice(0, 10).map((e) => `  ${explain(e)}`);
    throw configError(`${file} is not a valid sesame client config:\n${lines.join('\n')}\n(see sesame knock --help for the format)`);
  }
  const profiles = new Map<string, KnockOptions>();
  for (const [name, entry] of Object.entries(data.profiles ?? {})) profiles.set(name, convert(file, name, entry));
  return { file, profiles };
}

/** Flags win over the profile named HOST, which wins over the defaults. A HOST that names no profile is a host name. */
export function settingsFor(hostOrProfile: string, flags: KnockOptions, config: ClientConfig | undefined): KnockSettings {
  const p: KnockOptions | undefined = config?.profiles.get(hostOrProfile);
  return {
    profile: p === undefined ? undefined : hostOrProfile,
    host: flags.host ?? p?.host ?? hostOrProfile,
    family: flags.family ?? p?.family,
    knockPort: flags.knockPort ?? p?.knockPort ?? DEFAULTS.knockPort,
    serverKey: flags.serverKey ?? p?.serverKey,
    identity: flags.identity ?? p?.identity ?? DEFAULT_IDENTITY(),
    access: flags.access ?? p?.access ?? DEFAULT_ACCESS,
    durationSeconds: flags.durationSeconds ?? p?.durationSeconds,
    openAddress: flags.openAddress ?? p?.openAddress,
    timeoutSeconds: flags.timeoutSeconds ?? p?.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
  };
}
