// Shared command-line plumbing: node:util parseArgs with strict option checking, help output and default paths. Parses operator input only.
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs in strict mode: unknown flags and missing values are usage errors (cli.ts maps them to exit 2). */
export function parse<O extends Options>(argv: string[], options: O, allowPositionals: boolean) {
  return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
}

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
