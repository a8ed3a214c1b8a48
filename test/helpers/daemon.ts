// Test fixture for end-to-end runs: a throwaway server directory (keys, config, users) and the real daemon started inside a network namespace, its JSON log lines read by src/harness/daemon-log.ts. Trusts the test code that calls it.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE, writeKeyPair } from '../../src/protocol/keyfile.ts';
import { errorMessage } from '../../src/errors.ts';
import { DaemonLog } from '../../src/harness/daemon-log.ts';
import type { LogEvent } from '../../src/harness/daemon-log.ts';
import { spawnIn } from '../../src/harness/netns.ts';

/** dist/test/helpers/daemon.js -> dist/src/cli.js */
export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

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
    serverPubPath: join(dir, 'server.pub'),
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

/** The real daemon (`node dist/src/cli.js server -c CONFIG`) running inside a namespace, its log read by the shared DaemonLog. */
export class Daemon {
  readonly log: DaemonLog;
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(ns: string, configPath: string, extraArgs: readonly string[] = [], prefix: readonly string[] = []) {
    const child = spawnIn(ns, [...prefix, process.execPath, CLI, 'server', '-c', configPath, ...extraArgs]);
    this.child = child;
    this.log = new DaemonLog(child);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Every parsed log event so far, in order. */
  get events(): LogEvent[] {
    return this.log.events;
  }

  get stderr(): string[] {
    return this.log.stderr;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves with the first event from index since on (already seen or future) that matches; rejects after timeoutMs, with the daemon's stderr and last events. */
  waitFor(match: (e: LogEvent) => boolean, timeoutMs = 5000, since = 0, what?: string): Promise<LogEvent> {
    return this.log.waitFor(match, timeoutMs, since, what).catch((err: unknown) => {
      throw new Error(`${errorMessage(err)}; stderr: ${this.stderr.join('')}; last events: ${JSON.stringify(this.events.slice(-5))}`);
    });
  }

  event(name: string, timeoutMs = 5000, since = 0): Promise<LogEvent> {
    return this.waitFor((e) => e.event === name, timeoutMs, since, name);
  }

  dropped(reason: string, timeoutMs = 5000, since = 0): Promise<LogEvent> {
    return this.waitFor((e) => e.event === 'knock.dropped' && e.reason === reason, timeoutMs, since, `knock.dropped (${reason})`);
  }

  /** SIGKILL the whole `ip netns exec` chain's node process, as a crash would. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.child.kill(signal);
    await this.exited;
  }
}
