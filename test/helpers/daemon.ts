// Test fixture for end-to-end runs: a throwaway server directory (keys, config, users) and the real daemon started inside a network namespace, with its JSON log lines parsed as they arrive.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE, writeKeyPair } from '../../src/protocol/keyfile.ts';

/** dist/test/helpers/daemon.js -> dist/src/cli.js */
export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface LogEvent {
  readonly event?: string;
  readonly reason?: string;
  readonly [key: string]: unknown;
}

export interface ServerDir {
  readonly dir: string;
  readonly configPath: string;
  readonly usersPath: string;
  readonly serverKeys: ServerKeys;
  readonly serverPubPath: string;
  /** Writes a user's key pair under dir/NAME(.pub) and returns the keys. */
  userKey(name: string): UserKeys;
  writeUsers(users: Record<string, unknown>, revoked?: unknown[]): void;
  remove(): void;
}

export function makeServerDir(config: Record<string, unknown>): ServerDir {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-e2e-'));
  const serverKeys = generateServerKeys();
  writeKeyPair(join(dir, 'server.key'), formatKeyLine(KEY_TYPE.serverSecret, serverKeys.secretKey, 'test server'), formatKeyLine(KEY_TYPE.serverPublic, serverKeys.publicKey, 'test server'), false);
  const configPath = join(dir, 'config.json');
  const usersPath = join(dir, 'users.json');
  writeFileSync(usersPath, JSON.stringify({ users: {} }));
  writeFileSync(configPath, JSON.stringify({ serverKey: 'server.key', usersFile: 'users.json', stateDir: 'state', ...config }, null, 2));
  return {
    dir,
    configPath,
    usersPath,
    serverKeys,
    serverPubPath: join(dir, 'server.key.pub'),
    userKey(name) {
      const keys = generateUserKeys();
      writeKeyPair(join(dir, name), formatKeyLine(KEY_TYPE.userSecret, keys.secretKey.subarray(0, 32), name), formatKeyLine(KEY_TYPE.userPublic, keys.publicKey, name), true);
      return keys;
    },
    writeUsers(users, revoked) {
      const tmp = `${usersPath}.tmp`;
      writeFileSync(tmp, JSON.stringify(revoked === undefined ? { users } : { users, revoked }, null, 2));
      renameSync(tmp, usersPath);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const userEntry = (keys: UserKeys, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, keys.publicKey, 'test').trim() }],
  ports: ['tcp/2222'],
  ...extra,
});

/** The real daemon (`node dist/src/cli.js server -c CONFIG`) running inside a namespace. */
export class Daemon {
  readonly events: LogEvent[] = [];
  readonly stderr: string[] = [];
  private readonly child: ChildProcess;
  private waiters: { match: (e: LogEvent) => boolean; resolve: (e: LogEvent) => void; reject: (err: Error) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(ns: string, configPath: string, extraArgs: readonly string[] = [], prefix: readonly string[] = []) {
    this.child = spawn('ip', ['netns', 'exec', ns, ...prefix, process.execPath, CLI, 'server', '-c', configPath, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buffer = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let e: LogEvent;
        try {
          e = JSON.parse(line) as LogEvent;
        } catch {
          continue;
        }
        this.events.push(e);
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(e)) return true;
          w.resolve(e);
          return false;
        });
      }
    });
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => this.stderr.push(s));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        // A daemon that dies fails every wait at once, instead of at each wait's timeout.
        for (const w of this.waiters) w.reject(new Error(`daemon exited (code ${code}, signal ${signal}); stderr: ${this.stderr.join('')}`));
        this.waiters = [];
        resolve(code);
      }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves with the first event (already seen or future) that matches; rejects after timeoutMs. */
  waitFor(match: (e: LogEvent) => boolean, timeoutMs = 5000, since = 0): Promise<LogEvent> {
    const seen = this.events.slice(since).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log event in ${timeoutMs} ms; stderr: ${this.stderr.join('')}; last events: ${JSON.stringify(this.events.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });
  }

  event(name: string, timeoutMs = 5000, since = 0): Promise<LogEvent> {
    return this.waitFor((e) => e.event === name, timeoutMs, since);
  }

  dropped(reason: string, timeoutMs = 5000, since = 0): Promise<LogEvent> {
    return this.waitFor((e) => e.event === 'knock.dropped' && e.reason === reason, timeoutMs, since);
  }

  /** SIGKILL the whole `ip netns exec` chain's node process, as a crash would. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.child.kill(signal);
    await this.exited;
  }
}
