#!/usr/bin/env node
// sesame's command-line entry: dispatches to one module per subcommand and turns operator errors into a message and an exit code.
import { mkdirSync, readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { errorMessage, EXIT, OperatorError } from './errors.ts';
import { printable } from './text.ts';

type Command = (argv: string[]) => Promise<number>;

/** Commands a person waits for on every use (an ssh login through ssh-proxy): worth V8's code cache. */
const CACHED = new Set(['knock', 'ssh-proxy']);

/**
 * Node >= 22.1 keeps V8's compiled code of every module in a cache directory (module.enableCompileCache), which
 * roughly halves the cost of loading sesame's modules and its dependencies (libsodium's 900 KB of JavaScript, ssh2).
 * The cache is the user's own (~/.cache/sesame, 0700), never a shared temp directory another user could fill with
 * code. Node 20 has no such API: there every run compiles afresh. Failures (no home, read-only) just mean no cache.
 */
function enableCompileCache(): void {
  const enable: unknown = Reflect.get(nodeModule, 'enableCompileCache');
  if (typeof enable !== 'function') return;
  try {
    const xdg = process.env['XDG_CACHE_HOME'];
    const dir = join(xdg !== undefined && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'sesame', 'node-compile-cache');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    enable.call(nodeModule, dir);
  } catch {
    // no writable cache directory: run uncached
  }
}

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  demo: { summary: 'run a narrated demo in throwaway network namespaces (root)', load: async () => (await import('./cli/demo.ts')).demo },
  keygen: { summary: 'create a user key (Ed25519) or, with --server, a server key (X25519)', load: async () => (await import('./cli/keygen.ts')).keygen },
  server: { summary: 'run the daemon, or: server init DIR | --check | --cleanup', load: async () => (await import('./cli/server.ts')).server },
  knock: { summary: 'send one knock to open a port on a server (--wait: until it is open)', load: async () => (await import('./cli/knock.ts')).knock },
  'ssh-proxy': { summary: 'knock, wait for the port, then relay stdin/stdout (ssh ProxyCommand)', load: async () => (await import('./cli/knock.ts')).sshProxy },
  profile: { summary: "profile import LINE: add a server to your client config from its admin's invitation", load: async () => (await import('./cli/profile.ts')).profile },
  user: { summary: "manage the server's users: add | set | list | show | revoke | remove", load: async () => (await import('./cli/user.ts')).user },
  status: { summary: 'live grants (from the kernel) and whether the daemon runs', load: async () => (await import('./cli/status.ts')).status },
  grant: { summary: 'grant close --user NAME | --address ADDRESS: close grants and cut their sessions', load: async () => (await import('./cli/status.ts')).grant },
};

export function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: sesame <command> [options]',
    '',
    'Single-packet authorization: one signed, encrypted UDP knock opens a port in nftables for a limited time.',
    '',
    'commands:',
    ...lines,
    `  ${'help'.padEnd(width)}  show this text, or "help COMMAND" for one command`,
    '',
    'options: --version, --help. Every command takes --help.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`sesame ${version()}\n`);
    return EXIT.ok;
  }
  if (name === 'help') {
    const topic = rest[0];
    if (topic === undefined) {
      process.stdout.write(`${usage()}\n`);
      return EXIT.ok;
    }
    return main([topic, '--help']);
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`sesame: unknown command "${name}"\n\n${usage()}\n`);
    return EXIT.usage;
  }
  if (CACHED.has(name)) enableCompileCache();
  return (await command.load())(rest);
}

/** The exit code and one line for a failure; the process then ends at once, whatever handles a half-done start left open. */
function fail(err: unknown): never {
  let code: number = EXIT.failure;
  if (err instanceof OperatorError) {
    // Messages quote files (names, keys, addresses): escaped line by line, so a hand-edited file cannot drive the terminal.
    process.stderr.write(`sesame: ${err.message.split('\n').map(printable).join('\n')}\n`);
    code = err.exitCode;
  } else if (err instanceof TypeError && 'code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`sesame: ${err.message}\n(see --help)\n`);
    code = EXIT.usage;
  } else {
    process.stderr.write(`sesame: internal error: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}\n`);
  }
  // Writes to stderr are synchronous on Linux (files, pipes, terminals), so nothing is lost by exiting now.
  process.exit(code);
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, fail);
