// The README as the tests read it: every command line of its ```sh blocks (continuations joined, comments dropped), its ~/.ssh/config example, and the documented rewrite that points a command at temp directories instead of /etc/sesame and /var/lib/sesame. Trusts the repository's README.md.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** dist/test/helpers/readme.js -> README.md at the repository root. */
export const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** Fenced blocks of the given info string, as lists of raw lines; a fence indented inside a list item counts too, its indent removed. */
function blocks(text: string, info: string): string[][] {
  const out: string[][] = [];
  let current: { info: string; indent: number; lines: string[] } | undefined;
  for (const line of text.split('\n')) {
    const indent = line.length - line.trimStart().length;
    if (current === undefined) {
      if (line.trimStart().startsWith('```')) current = { info: line.trimStart().slice(3).trim(), indent, lines: [] };
    } else if (line.trim() === '```') {
      if (current.info === info) out.push(current.lines);
      current = undefined;
    } else {
      current.lines.push(line.slice(Math.min(current.indent, indent)));
    }
  }
  return out;
}

/** The line without a trailing `# comment` (a # at the start or after white space, outside quotes). */
function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] ?? ''))) {
      return line.slice(0, i);
    }
  }
  return line;
}

/** Every command of every ```sh block, in README order: backslash continuations joined with one space, comments and blank lines dropped. */
export function readmeCommands(text = readFileSync(README, 'utf8')): string[] {
  const commands: string[] = [];
  for (const block of blocks(text, 'sh')) {
    let pending = '';
    for (const raw of block) {
      if (raw.trimEnd().endsWith('\\')) {
        pending += `${raw.trimEnd().slice(0, -1).trim()} `;
        continue;
      }
      const line = stripComment(`${pending}${raw.trim()}`).trim().replace(/\s+/g, ' ');
      pending = '';
      if (line !== '') commands.push(line);
    }
  }
  return commands;
}

/** The README's ~/.ssh/config example: the plain fenced block holding a ProxyCommand line. */
export function readmeSshConfig(text = readFileSync(README, 'utf8')): string {
  const found = blocks(text, '').find((b) => b.some((l) => /^\s*ProxyCommand sesame ssh-proxy/.test(l)));
  if (found === undefined) throw new Error('README.md has no ~/.ssh/config block with "ProxyCommand sesame ssh-proxy"');
  return `${found.join('\n')}\n`;
}

/** `[--a x] [--b]` parts of a README synopsis: without them, and with them (brackets dropped). */
export function expandOptional(command: string): { without: string; with: string } {
  return { without: command.replace(/\s*\[[^\]]*\]/g, ''), with: command.replace(/\[([^\]]*)\]/g, '$1') };
}

export interface Paths {
  readonly etc: string;
  readonly state: string;
  /** A "sesame" user exists here (the package test leaves it): init is told the daemon runs as root, as this test runs it. */
  readonly rootDaemon?: boolean;
}

/**
 * The documented rewrite before a README command runs here: first the defaults the command leaves implicit are made explicit
 * (`-c /etc/sesame/config.json` for `sesame user|status|grant`, `--state-dir /var/lib/sesame` for `sesame server init`, both
 * as the README documents them; and `--user root` for `sesame server init` where a "sesame" user exists, since this test runs
 * the daemon as root), then /etc/sesame and /var/lib/sesame become the test's temp directories. Nothing else changes.
 */
export function rewrite(command: string, paths: Paths): string {
  let text = command;
  if (/^sesame (user|status|grant)\b/.test(text) && !/ (-c|--config) /.test(text)) text += ' -c /etc/sesame/config.json';
  if (/^sesame server init\b/.test(text) && !/--state-dir/.test(text)) text += ' --state-dir /var/lib/sesame';
  if (/^sesame server init\b/.test(text) && paths.rootDaemon === true && !/--user/.test(text)) text += ' --user root';
  return text.replaceAll('/etc/sesame', paths.etc).replaceAll('/var/lib/sesame', paths.state);
}
