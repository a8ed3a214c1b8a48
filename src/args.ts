// Shared command-line plumbing: node:util parseArgs with strict option checking, help output and default paths. Parses operator input only.
import { homedir, hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs in strict mode: unknown flags and missing values are usage errors (cli.ts maps them to exit 2). */
export function parse<O extends Options>(argv: string[], options: O, allowPositionals: boolean) {
  return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
}

/** Client-side state lives under $XDG_CONFIG_HOME/sesame (default ~/.config/sesame). */
export function configHome(): string {
  const xdg = process.env['XDG_CONFIG_HOME'];
  return join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'sesame');
}

export const DEFAULT_IDENTITY = (): string => join(configHome(), 'id_ed25519');
export const DEFAULT_SERVER_DIR = '/etc/sesame';
export const DEFAULT_SERVER_CONFIG = join(DEFAULT_SERVER_DIR, 'config.json');

export function defaultComment(): string {
  let user = 'user';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep the generic name
  }
  return `${user}@${hostname()}`;
}
