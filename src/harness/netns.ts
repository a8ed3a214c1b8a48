// Throwaway network namespaces for the demo and the tests: run programs on the host or inside a namespace (no shell), create a pair joined by one veth, delete them with everything in them. Trusts its caller's names and addresses; refuses any namespace not named sesame-* and any address outside 10.0.0.0/8 and fd00::/8, and never creates an interface in the host namespace.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export interface ExecResult {
  /** Exit code; null if killed (timeout, signal) or the program could not be started. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the program could not be started at all (ENOENT: not installed). */
  readonly spawnError?: string;
}

export interface ExecOptions {
  /** Written to the program's stdin, which is then closed (closed at once when absent). */
  readonly input?: string;
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** One end of a veth pair and the namespace it lives in. */
export interface Side {
  readonly ns: string;
  readonly dev: string;
  /** Addresses with prefix length (10.77.0.1/24, fd00:5e5a:1::1/64), added in order: the first of a subnet is the one the kernel picks as source. */
  readonly cidrs: readonly string[];
  /** Further IPv6 addresses added deprecated (preferred_lft 0): the kernel picks them as source only for a socket bound to them. */
  readonly deprecatedCidrs?: readonly string[];
}

const OWNED = /^sesame-[a-z0-9-]{1,40}$/;
/** 10.0.0.0/8 and ULA fd00::/8 only: nothing the harness adds can shadow a routable address. */
const PRIVATE_CIDR = /^(10\.\d{1,3}\.\d{1,3}\.\d{1,3}\/\d{1,2}|fd[0-9a-f]{2}:[0-9a-f:]*\/\d{1,3})$/;
const EXEC_TIMEOUT_MS = 30_000;
const EXEC_MAX_BUFFER = 64 << 20;

/** Every program started here and still running, so an interrupted caller can end them all synchronously. */
const live = new Set<ChildProcess>();

function track<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** SIGKILLs every program started here that still runs; synchronous, for signal and exit handlers. */
export function killStarted(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** SIGKILLs every program started here and resolves once all have exited (or after timeoutMs). */
export async function stopStarted(timeoutMs = 2_000): Promise<void> {
  const exits = [...live].map((child) => new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  }));
  await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
}

function owned(ns: string): string {
  if (!OWNED.test(ns)) throw new Error(`refusing to touch network namespace "${ns}": not a sesame-* namespace`);
  return ns;
}

/** Which of `ip` and `nft` is not installed, as a message with the fix, or undefined if both are. */
export function missingTool(): string | undefined {
  if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).error !== undefined) return '`ip` (iproute2) is missing: apt-get install iproute2';
  if (spawnSync('nft', ['--version'], { stdio: 'ignore' }).error !== undefined) return '`nft` is missing: apt-get install nftables';
  return undefined;
}

/** Runs a program with an argument array (no shell) and collects its output; never rejects, whatever the exit code. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? EXEC_TIMEOUT_MS, maxBuffer: EXEC_MAX_BUFFER, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr });
      const code = typeof err.code === 'number' ? err.code : null;
      const spawnError = typeof err.code === 'string' ? err.code : undefined;
      resolve({ code, stdout, stderr: stderr === '' && code === null ? err.message : stderr, ...(spawnError === undefined ? {} : { spawnError }) });
    });
    track(child);
    child.stdin?.on('error', () => {}); // EPIPE if the program exits without reading its input
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs argv inside ns: `ip netns exec` enters the namespace and then execs argv, so the pid is argv's own. */
export function execIn(ns: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', owned(ns), ...argv], opts);
}

/** Starts a long-lived program inside ns with stdin, stdout and stderr piped; killStarted/stopStarted end it if its caller does not. */
export function spawnIn(ns: string, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcessByStdio<Writable, Readable, Readable> {
  const child = track(spawn('ip', ['netns', 'exec', owned(ns), ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env }));
  child.stdin.on('error', () => {}); // EPIPE if the program exits while a caller writes to it
  return child;
}

/** SIGKILLs one started program and resolves once it has exited. */
export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Names of the existing namespaces that start with prefix. */
export function listNamespaces(prefix: string): string[] {
  let out = '';
  try {
    out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  // Lines look like "name" or "name (id: 3)".
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}

/**
 * Kills whatever still runs in ns, then deletes it; synchronous, so a signal or exit handler can call it.
 * Deleting the namespace also deletes its veth end (and so the pair) and its nftables ruleset.
 */
export function removeNamespace(ns: string): void {
  owned(ns);
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  try {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

async function must(argv: readonly string[]): Promise<void> {
  const [cmd = 'ip', ...args] = argv;
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`\`${argv.join(' ')}\` failed: ${r.stderr.trim() || `exit ${r.code}`}`);
}

function addresses(s: Side): string[][] {
  const add = (cidr: string, extra: readonly string[]): string[] => {
    if (!PRIVATE_CIDR.test(cidr)) throw new Error(`refusing to add address ${cidr}: only 10.0.0.0/8 and fd00::/8`);
    // No duplicate address detection on IPv6: a fresh link with two ends has nothing to collide with, and DAD would delay the address.
    return ['ip', '-n', s.ns, 'addr', 'add', cidr, 'dev', s.dev, ...(cidr.includes(':') ? ['nodad'] : []), ...extra];
  };
  return [...s.cidrs.map((c) => add(c, [])), ...(s.deprecatedCidrs ?? []).map((c) => add(c, ['preferred_lft', '0']))];
}

/** Creates ns (after removing a stale one of the same name) with its loopback up. */
export async function addNamespace(ns: string): Promise<void> {
  removeNamespace(ns);
  await must(['ip', 'netns', 'add', owned(ns)]);
  await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
}

/** Joins two existing namespaces with a veth pair born in a's namespace, its peer created directly in b's, with the sides' addresses, both up. */
export async function link(a: Side, b: Side): Promise<void> {
  const steps = [a, b].map(addresses);
  await must(['ip', '-n', owned(a.ns), 'link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, 'netns', owned(b.ns)]);
  for (const [i, s] of [a, b].entries()) {
    for (const argv of steps[i] ?? []) await must(argv);
    await must(['ip', '-n', s.ns, 'link', 'set', s.dev, 'up']);
  }
}

/** Adds a private address to an interface of ns (a service address on lo, say). */
export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  for (const argv of addresses({ ns: owned(ns), dev, cidrs: [cidr] })) await must(argv);
}

/** Routes a private destination in ns through a gateway on one of its links. */
export async function addRoute(ns: string, cidr: string, via: string): Promise<void> {
  if (!PRIVATE_CIDR.test(cidr)) throw new Error(`refusing to route ${cidr}: only 10.0.0.0/8 and fd00::/8`);
  await must(['ip', '-n', owned(ns), 'route', 'add', cidr, 'via', via]);
}

/** Takes an interface of ns down or up (cuts a link without deleting it). */
export async function setLink(ns: string, dev: string, state: 'up' | 'down'): Promise<void> {
  await must(['ip', '-n', owned(ns), 'link', 'set', dev, state]);
}

/**
 * Creates both namespaces (after removing stale ones of the same names) and joins them with a veth pair
 * born inside the server namespace with its peer created directly in the client one: no step puts an
 * interface in the host namespace. On any failure both are removed again and the error names the step.
 */
export async function createPair(server: Side, client: Side): Promise<void> {
  try {
    for (const s of [server, client]) await addNamespace(s.ns);
    await link(server, client);
  } catch (err) {
    for (const s of [server, client]) removeNamespace(s.ns);
    throw err;
  }
}

/**
 * A third namespace behind an existing one (a container or VM behind a host): peer's namespace is created (a stale one of
 * the same name removed first) and joined to host's by a veth born in host's namespace; host forwards IPv4 and IPv6, and
 * peer routes everything through host's first address of each family (`via`). On any failure peer's namespace is removed.
 */
export async function createBehind(host: Side, peer: Side, via: readonly string[]): Promise<void> {
  removeNamespace(peer.ns);
  try {
    const steps = [host, peer].map(addresses);
    await must(['ip', 'netns', 'add', owned(peer.ns)]);
    await must(['ip', '-n', owned(host.ns), 'link', 'add', host.dev, 'type', 'veth', 'peer', 'name', peer.dev, 'netns', peer.ns]);
    for (const [i, s] of [host, peer].entries()) {
      for (const argv of steps[i] ?? []) await must(argv);
      await must(['ip', '-n', s.ns, 'link', 'set', s.dev, 'up']);
    }
    await must(['ip', '-n', peer.ns, 'link', 'set', 'lo', 'up']);
    for (const gateway of via) await must(['ip', '-n', peer.ns, ...(gateway.includes(':') ? ['-6'] : []), 'route', 'add', 'default', 'via', gateway]);
    await must(['ip', 'netns', 'exec', host.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  } catch (err) {
    removeNamespace(peer.ns);
    throw err;
  }
}
