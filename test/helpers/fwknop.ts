// Benchmark fixture for fwknop (the C SPA daemon) next to sesame: installs it if missing, writes a throwaway fwknopd.conf/access.conf
// in a temp dir (nothing under /etc/fwknop or /var/run is used), runs the real fwknopd inside a namespace, and builds SPA packets with the
// real fwknop client. Trusts the benchmark code that calls it; touches only its temp dirs and the namespaces it is given.
import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execIn } from '../../src/harness/netns.ts';

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Installs fwknop-server, fwknop-client and iptables from apt when fwknopd, fwknop or iptables is missing; apt-get update only if the first try fails. */
export function ensureFwknop(log: (s: string) => void = () => {}): void {
  if (has('fwknopd') && has('fwknop') && has('iptables')) return;
  const install = (): void => {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'fwknop-server', 'fwknop-client', 'iptables'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  log('fwknop is not installed: apt-get install -y fwknop-server fwknop-client iptables');
  try {
    install();
  } catch {
    log('apt-get install failed; running apt-get update first');
    execFileSync('apt-get', ['update'], { stdio: 'ignore' });
    install();
  }
  if (!has('fwknopd') || !has('fwknop')) throw new Error('fwknop-server/fwknop-client installed, but fwknopd or fwknop is still not on PATH');
}

/** e.g. "fwknopd 2.6.10, iptables v1.8.9 (nf_tables)". */
export function fwknopdVersion(): string {
  const fwknopd = /server\s+(\S+?),?\s/.exec(execFileSync('fwknopd', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  return `fwknopd ${fwknopd}, ${execFileSync('iptables', ['--version'], { encoding: 'utf8' }).trim()}`;
}

export interface FwknopKeys {
  /** Rijndael key, base64 (KEY_BASE64 / --key-base64-rijndael). */
  readonly key: string;
  /** HMAC-SHA256 key, base64 (HMAC_KEY_BASE64 / --key-base64-hmac). */
  readonly hmacKey: string;
}

/** `fwknop --key-gen`, with HOME pointed at a temp dir and no rc/run files, so nothing is written to the real home directory. */
export function fwknopKeyGen(home: string): FwknopKeys {
  const out = execFileSync('fwknop', ['--no-rc-file', '--no-save-args', '--key-gen'], { encoding: 'utf8', env: { ...process.env, HOME: home } });
  const key = /^KEY_BASE64:\s*(\S+)/m.exec(out)?.[1];
  const hmacKey = /^HMAC_KEY_BASE64:\s*(\S+)/m.exec(out)?.[1];
  if (key === undefined || hmacKey === undefined) throw new Error(`unexpected fwknop --key-gen output: ${out}`);
  return { key, hmacKey };
}

/** Keys of the same shape as --key-gen's (32-byte Rijndael key, 64-byte HMAC key), for filler stanzas that never match. */
export function randomFwknopKeys(): FwknopKeys {
  return { key: randomBytes(32).toString('base64'), hmacKey: randomBytes(64).toString('base64') };
}

export interface FwknopSetup {
  readonly dir: string;
  readonly configPath: string;
  readonly accessPath: string;
  readonly runDir: string;
  readonly digestPath: string;
  readonly pidPath: string;
  readonly logPath: string;
  readonly keys: FwknopKeys;
  remove(): void;
}

export interface FwknopOptions {
  /** true: ENABLE_UDP_SERVER (a UDP socket on 62201); false: libpcap sniffing on `interface`. */
  readonly udpServer: boolean;
  readonly interface: string;
  /** OPEN_PORTS of every stanza, e.g. ['tcp/2222']. */
  readonly openPorts: readonly string[];
  readonly accessTimeoutSeconds: number;
  /** Non-matching stanzas (own random keys) placed before the one real stanza; default 0. */
  readonly fillerStanzas?: number;
}

/** A temp dir with fwknopd.conf, access.conf (both 0600, as fwknopd wants) and a run dir for the pid file and digest cache. */
export function makeFwknopDir(opts: FwknopOptions): FwknopSetup {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-fwknop-'));
  const runDir = join(dir, 'run');
  mkdirSync(runDir, { mode: 0o700 });
  const keys = fwknopKeyGen(dir);
  const configPath = join(dir, 'fwknopd.conf');
  const accessPath = join(dir, 'access.conf');
  const digestPath = join(runDir, 'digest.cache');
  const pidPath = join(runDir, 'fwknopd.pid');
  const conf = [
    `PCAP_INTF ${opts.interface};`,
    `PCAP_FILTER udp port 62201;`,
    `ENABLE_UDP_SERVER ${opts.udpServer ? 'Y' : 'N'};`,
    'UDPSERV_PORT 62201;',
    // fwknopd's own defaults, spelled out: aging on (120 s), digests persisted (the replay cache), rules flushed at start and exit.
    'ENABLE_SPA_PACKET_AGING Y;',
    'MAX_SPA_PACKET_AGE 120;',
    'ENABLE_DIGEST_PERSISTENCE Y;',
    'FLUSH_IPT_AT_INIT Y;',
    'FLUSH_IPT_AT_EXIT Y;',
    'FIREWALL_EXE /usr/sbin/iptables;',
    `FWKNOP_RUN_DIR ${runDir};`,
    `FWKNOP_CONF_DIR ${dir};`,
    `ACCESS_FILE ${accessPath};`,
    `FWKNOP_PID_FILE ${pidPath};`,
    `DIGEST_FILE ${digestPath};`,
    `GPG_HOME_DIR ${join(dir, 'gnupg')};`,
    '',
  ].join('\n');
  const stanza = (k: FwknopKeys): string => [
    'SOURCE ANY',
    'REQUIRE_SOURCE_ADDRESS Y',
    `OPEN_PORTS ${opts.openPorts.join(',')}`,
    `KEY_BASE64 ${k.key}`,
    `HMAC_KEY_BASE64 ${k.hmacKey}`,
    'HMAC_DIGEST_TYPE sha256',
    `FW_ACCESS_TIMEOUT ${opts.accessTimeoutSeconds}`,
    '',
  ].join('\n');
  const stanzas = Array.from({ length: opts.fillerStanzas ?? 0 }, () => stanza(randomFwknopKeys()));
  stanzas.push(stanza(keys)); // the matching stanza last: fwknopd tries stanzas in file order
  writeFileSync(configPath, conf, { mode: 0o600 });
  writeFileSync(accessPath, stanzas.join('\n'), { mode: 0o600 });
  chmodSync(configPath, 0o600);
  chmodSync(accessPath, 0o600);
  return {
    dir,
    configPath,
    accessPath,
    runDir,
    digestPath,
    pidPath,
    logPath: join(dir, 'fwknopd.log'),
    keys,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface SpaRequest {
  /** e.g. 'tcp/2222' */
  readonly access: string;
  /** The address to open, inside the packet (-a); must be the packet's source (REQUIRE_SOURCE_ADDRESS). */
  readonly allowIp: string;
  /** Client-requested timeout (-f), seconds. */
  readonly timeoutSeconds?: number;
}

/**
 * Builds SPA packets with the real client (`fwknop -T -B FILE -b`: build, do not send, append to FILE), one process per packet, run by one
 * shell inside ns. Returns the UDP payloads (fwknop sends the base64 text as is), in request order.
 */
export async function buildSpaPackets(ns: string, setup: FwknopSetup, server: string, requests: readonly SpaRequest[]): Promise<Buffer[]> {
  const out = join(setup.dir, `spa-${Date.now()}-${randomBytes(4).toString('hex')}.txt`);
  const script = `${out}.sh`;
  const safe = /^[A-Za-z0-9+/=.:,_-]+$/;
  for (const v of [server, setup.keys.key, setup.keys.hmacKey, out, ...requests.flatMap((r) => [r.access, r.allowIp])]) {
    if (!safe.test(v)) throw new Error(`unexpected characters in fwknop argument ${v}`);
  }
  const lines = [`export HOME='${setup.dir}'`, 'set -e'];
  for (const r of requests) {
    lines.push(`fwknop --no-rc-file --no-save-args -A ${r.access} -a ${r.allowIp} -D ${server} --key-base64-rijndael '${setup.keys.key}' --key-base64-hmac '${setup.keys.hmacKey}' --hmac-digest-type sha256${r.timeoutSeconds === undefined ? '' : ` -f ${r.timeoutSeconds}`} -T -B '${out}' -b >/dev/null`);
  }
  writeFileSync(script, `${lines.join('\n')}\n`, { mode: 0o600 });
  const r = await execIn(ns, ['sh', script], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`fwknop client failed (${r.code}): ${r.stderr.trim()}`);
  const packets = readFileSync(out, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  rmSync(out, { force: true });
  rmSync(script, { force: true });
  if (packets.length !== requests.length) throw new Error(`fwknop built ${packets.length} packets, expected ${requests.length}`);
  return packets.map((p) => Buffer.from(p, 'latin1'));
}

/** The real fwknopd, foreground (-f), inside ns; stdout and stderr go to setup.logPath (a file: a 1,000-stanza run logs ~1,000 lines per knock). */
export class Fwknopd {
  readonly #child: ChildProcess;
  readonly #setup: FwknopSetup;
  readonly exited: Promise<number | null>;
  #done = false;

  constructor(ns: string, setup: FwknopSetup, opts: FwknopOptions) {
    this.#setup = setup;
    const fd = openSync(setup.logPath, 'a');
    const args = ['-f', '-c', setup.configPath, '-a', setup.accessPath, '-p', setup.pidPath, '-r', setup.runDir, '-d', setup.digestPath];
    if (!opts.udpServer) args.push('-i', opts.interface);
    this.#child = spawn('ip', ['netns', 'exec', ns, 'fwknopd', ...args], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.exited = new Promise((resolve) => this.#child.on('exit', (code) => { this.#done = true; resolve(code); }));
  }

  /** `ip netns exec` execs fwknopd, so this is fwknopd's pid. */
  get pid(): number {
    return this.#child.pid ?? 0;
  }

  log(): string {
    try {
      return readFileSync(this.#setup.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Resolves once fwknopd says it is receiving (UDP server bound, or pcap loop started). */
  async ready(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (/Kicking off UDP server|Starting fwknopd main event loop/.test(this.log())) return;
      if (this.#done) throw new Error(`fwknopd exited before it was ready: ${this.log().slice(-2000)}`);
      await sleep(20);
    }
    throw new Error(`fwknopd not ready after ${timeoutMs} ms: ${this.log().slice(-2000)}`);
  }

  /** Authenticated, decrypted, non-replayed SPA packets so far: one digest.cache line each (fwknopd writes it before the firewall step). */
  digestCount(): number {
    if (!existsSync(this.#setup.digestPath)) return 0;
    return readFileSync(this.#setup.digestPath, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  }

  /** Size of the digest cache in bytes (cheap to poll). */
  digestBytes(): number {
    try {
      return statSync(this.#setup.digestPath).size;
    } catch {
      return 0;
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.#done) return;
    this.#child.kill(signal);
    await this.exited;
  }
}
