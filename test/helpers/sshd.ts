// A throwaway OpenSSH server (the real sshd) inside a network namespace, and the ssh client flags that log in to it as root with a throwaway key. Trusts the test code that calls it; writes only under its own temp dir (and creates /run/sshd, sshd's privilege-separation dir, if missing).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnIn } from '../../src/harness/netns.ts';

const SSHD = '/usr/sbin/sshd';
const TOOLS = [SSHD, '/usr/bin/ssh', '/usr/bin/ssh-keygen'] as const;
const READY_MS = 10_000;

/** Why the ssh tests cannot run here, or undefined. Like skipReason: in CI a missing OpenSSH is an error, never a silent skip. */
export function sshMissing(): string | undefined {
  const missing = TOOLS.filter((p) => !existsSync(p));
  if (missing.length === 0) return undefined;
  const reason = `OpenSSH is not installed (${missing.join(', ')} missing; apt-get install openssh-server openssh-client)`;
  if (process.env['CI'] !== undefined && process.env['CI'] !== '') throw new Error(`CI must run the ssh tests, but ${reason}`);
  return reason;
}

export interface SshServer {
  /** The authorized client's private key. */
  readonly clientKey: string;
  /** sshd's log (stderr) so far, for failure messages: it says why a login was refused. */
  log(): string;
  /** ssh argv (program first) logging in as root at host:port to run command; options go before the destination. */
  ssh(host: string, port: number, command: readonly string[], options?: readonly string[]): string[];
  stop(): Promise<void>;
}

export interface SshdOptions {
  readonly ports: readonly number[];
  /** Addresses the client will use: each gets a known_hosts line per port, so StrictHostKeyChecking=yes holds. */
  readonly hosts: readonly string[];
  /** Default both families. sshd caps listen sockets at 16 (ports x addresses). */
  readonly listen?: readonly ('0.0.0.0' | '::')[];
}

const MAX_LISTEN_SOCKETS = 16;

/** OpenSSH 9.8 added per-source penalties, which would throttle the --wait probes that connect and leave before authenticating. */
function hasPenalties(): boolean {
  const m = /OpenSSH_(\d+)\.(\d+)/.exec(spawnSync(SSHD, ['-V'], { encoding: 'utf8' }).stderr);
  return m !== null && Number(m[1]) * 100 + Number(m[2]) >= 908;
}

function config(dir: string, ports: readonly number[], listen: readonly string[]): string {
  return [
    ...ports.map((p) => `Port ${p}`),
    ...listen.map((a) => `ListenAddress ${a}`),
    `HostKey ${join(dir, 'host_ed25519')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    // No PAM: the host's PAM stack (pam_loginuid, motd) is not ours to depend on. sshd then refuses accounts whose password starts with "!" (locked); its log says so.
    'UsePAM no',
    // The temp dir's owner and modes are the test's, not a home directory's.
    'StrictModes no',
    'LogLevel VERBOSE',
    ...(hasPenalties() ? ['PerSourcePenalties no'] : []),
    '',
  ].join('\n');
}

const run = promisify(execFile);

/** Starts sshd -D -e inside ns and resolves once it listens on every port, IPv4 and IPv6. */
export async function startSshd(ns: string, opts: SshdOptions): Promise<SshServer> {
  const listen = opts.listen ?? ['0.0.0.0', '::'];
  const sockets = opts.ports.length * listen.length;
  if (sockets > MAX_LISTEN_SOCKETS) throw new Error(`sshd listens on at most ${MAX_LISTEN_SOCKETS} sockets; ${opts.ports.length} ports x ${listen.length} addresses is ${sockets}`);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), 'sesame-sshd-'));
  try {
    const hostKey = join(dir, 'host_ed25519');
    const clientKey = join(dir, 'client_ed25519');
    await run('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'sesame test host', '-f', hostKey]);
    await run('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'sesame test client', '-f', clientKey]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
    const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, opts.hosts.flatMap((h) => opts.ports.map((p) => `[${h}]:${p} ${hostPub}\n`)).join(''));
    const configPath = join(dir, 'sshd_config');
    writeFileSync(configPath, config(dir, opts.ports, listen));
    return await launch(ns, dir, configPath, clientKey, knownHosts, sockets);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(ns: string, dir: string, configPath: string, clientKey: string, knownHosts: string, sockets: number): Promise<SshServer> {
  const child = spawnIn(ns, [SSHD, '-D', '-e', '-f', configPath]);
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not listen within ${READY_MS} ms: ${log}`)), READY_MS);
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      log += s;
      if ((log.match(/^Server listening on /gm) ?? []).length >= sockets) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited (${code}) before listening: ${log}`));
    });
  });
  try {
    await ready;
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    clientKey,
    log: () => log,
    ssh: (host, port, command, options = []) => [
      '/usr/bin/ssh',
      '-F', '/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=3',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none',
      '-o', 'LogLevel=ERROR',
      '-i', clientKey,
      '-p', String(port),
      ...options,
      `root@${host}`,
      ...command,
    ],
    stop,
  };
}
