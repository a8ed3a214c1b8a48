// Client benchmark: wall time of the real CLI (`sesame knock --wait`, and ssh logins through `sesame ssh-proxy`) against the real daemon and sshd in namespaces, timed from the host around each process. Prints figures; asserts nothing.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { startTcpListener } from '../../src/harness/programs.ts';
import { createTopology } from '../../src/harness/topology.ts';
import { startSshd } from '../helpers/sshd.ts';
import { percentile } from './measure.ts';
import { startAgent } from '../helpers/ssh-agent.ts';
import { measureStartup, startupTable } from './startup.ts';

const KNOCK_RUNS = Math.max(20, Number(process.env['KNOCK_RUNS'] ?? '20'));
/** sshd listens on at most 16 sockets: 2222 and one fresh port per ssh-proxy run, IPv4 only. */
const SSH_RUNS = Math.min(15, Math.max(10, Number(process.env['SSH_RUNS'] ?? '10')));
/** ssh through ssh-proxy signing with ssh-agent, against plain ssh, both to the already open SSH_PORT: at least 20 each. */
const AGENT_RUNS = Math.max(20, Number(process.env['AGENT_RUNS'] ?? '20'));
const KNOCK_PORT = 62201;
const SSH_PORT = 2222;
/** Each measured knock asks for a port nobody was granted yet, so every run includes the real knock-to-open path. */
const knockPorts = Array.from({ length: KNOCK_RUNS }, (_, i) => 30_000 + i);
const proxyPorts = Array.from({ length: SSH_RUNS }, (_, i) => 31_000 + i);

interface Row {
  readonly label: string;
  readonly ms: readonly number[];
  /** Subtracted from every figure for the "net" columns: the cost of starting a process in the namespace at all. */
  readonly minusMs?: number;
}

/** Runs that failed and were run again (a loaded machine: sshd has closed a login at times); printed with the figures. */
const retried: string[] = [];

async function timed(run: () => Promise<ExecResult>, what: string): Promise<{ ms: number; r: ExecResult }> {
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    const r = await run();
    const ms = performance.now() - t0;
    if (r.code === 0) return { ms, r };
    if (attempt === 3) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
    retried.push(`${what}: exit ${r.code}, ${r.stderr.trim().split('\n').pop() ?? ''}`);
  }
}

function table(rows: readonly Row[]): string {
  const cells = rows.map((row) => {
    const s = [...row.ms].sort((a, b) => a - b);
    const med = percentile(s, 50);
    const p95 = percentile(s, 95);
    const net = row.minusMs === undefined ? ['', ''] : [(med - row.minusMs).toFixed(0), (p95 - row.minusMs).toFixed(0)];
    return [row.label, String(s.length), med.toFixed(0), p95.toFixed(0), ...net];
  });
  const head = ['', 'runs', 'median ms', 'p95 ms', 'net median', 'net p95'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i === 0 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ');
  return [line(head), ...cells.map(line)].join('\n');
}

await loadSodium();
const topo = await createTopology('benchcli');
const dir = makeServerDir({
  knockPort: KNOCK_PORT,
  protect: [SSH_PORT, ...knockPorts, ...proxyPorts].map((p) => `tcp/${p}`),
  defaultDurationSeconds: 600,
  maxDurationSeconds: 600,
  limits: { perSourcePerSecond: 1000, perSourceBurst: 1000 },
});
const stops: (() => Promise<void>)[] = [];
try {
  const alice = dir.userKey('alice');
  // carol's key lives only in a real ssh-agent (made by sesame keygen, added, deleted): ssh-proxy -i carol.pub signs through the agent.
  const carol = join(dir.dir, 'carol');
  const made = await execIn(topo.client.ns, [process.execPath, CLI, 'keygen', '-f', carol, '-N', '', '-C', 'carol']);
  if (made.code !== 0) throw new Error(`keygen failed: ${made.stderr}`);
  const agent = await startAgent();
  stops.push(async () => agent.stop());
  if ((await agent.add(carol)).code !== 0) throw new Error('ssh-add failed');
  rmSync(carol);
  dir.writeUsers({
    alice: userEntry(alice, { ports: [SSH_PORT, ...knockPorts, ...proxyPorts].map((p) => `tcp/${p}`) }),
    carol: { keys: [{ key: readFileSync(`${carol}.pub`, 'utf8').trim() }], ports: [`tcp/${SSH_PORT}`] },
  });
  const clientConfig = join(dir.dir, 'client.json');
  writeFileSync(clientConfig, '{}\n');
  const identity = ['-i', join(dir.dir, 'alice'), '--server-key', dir.serverPubPath, '--knock-port', String(KNOCK_PORT), '--config', clientConfig];
  const host = topo.server.v4;
  const inClient = (argv: readonly string[]): Promise<ExecResult> => execIn(topo.client.ns, argv, { timeoutMs: 30_000 });

  for (const p of knockPorts) {
    const l = await startTcpListener(topo.server.ns, '0.0.0.0', p);
    stops.push(() => l.stop());
  }
  const sshd = await startSshd(topo.server.ns, { ports: [SSH_PORT, ...proxyPorts], hosts: [host], listen: ['0.0.0.0'] });
  stops.push(() => sshd.stop());
  const daemon = new Daemon(topo.server.ns, dir.configPath);
  stops.push(() => daemon.kill('SIGTERM'));
  await daemon.event('server.started', 10_000);

  // Warm the page cache and the first-run paths (sodium wasm compile cache, nft) before measuring anything.
  for (let i = 0; i < 3; i++) await inClient([process.execPath, '-e', '0']);
  await timed(() => inClient([process.execPath, CLI, 'knock', host, ...identity, '-p', `tcp/${SSH_PORT}`, '--wait']), 'warm-up knock');

  const bare: number[] = [];
  for (let i = 0; i < KNOCK_RUNS; i++) bare.push((await timed(() => inClient([process.execPath, '-e', '0']), 'node -e 0')).ms);
  const bareMedian = percentile([...bare].sort((a, b) => a - b), 50);

  const knock = (port: number): Promise<ExecResult> => inClient([process.execPath, CLI, 'knock', host, ...identity, '-p', `tcp/${port}`, '--wait', '--timeout', '10']);
  const fresh: number[] = [];
  const reported: number[] = [];
  for (const p of knockPorts) {
    const { ms, r } = await timed(() => knock(p), `knock --wait tcp/${p}`);
    fresh.push(ms);
    const m = /\((\d+) ms after the knock\)/.exec(r.stderr);
    if (m !== null) reported.push(Number(m[1]));
  }
  // The same ports again: all granted now, so --wait connects at its first attempt; the difference to the fresh runs is the grant's latency.
  const open: number[] = [];
  for (const p of knockPorts) open.push((await timed(() => knock(p), `knock --wait tcp/${p} (open)`)).ms);

  // ssh's ConnectTimeout (3 s in the helper) covers the banner exchange, so a ProxyCommand on a loaded machine gets more.
  const patient = (argv: string[]): string[] => argv.map((a) => (a === 'ConnectTimeout=3' ? 'ConnectTimeout=30' : a));
  const proxy = ['-o', `ProxyCommand=${[process.execPath, CLI, 'ssh-proxy', '%h', '%p', ...identity].join(' ')}`];
  const sshFresh: number[] = [];
  for (const p of proxyPorts) sshFresh.push((await timed(() => inClient(patient(sshd.ssh(host, p, ['true'], proxy))), `ssh via ssh-proxy to ${p}`)).ms);
  const sshProxyOpen: number[] = [];
  const sshPlain: number[] = [];
  for (let i = 0; i < SSH_RUNS; i++) {
    sshProxyOpen.push((await timed(() => inClient(patient(sshd.ssh(host, SSH_PORT, ['true'], proxy))), 'ssh via ssh-proxy (open)')).ms);
    sshPlain.push((await timed(() => inClient(patient(sshd.ssh(host, SSH_PORT, ['true']))), 'plain ssh')).ms);
  }

  // With the agent, interleaved with plain ssh: both to SSH_PORT, which carol's knocks keep open (each run knocks again).
  const agentEnv = { ...process.env, SSH_AUTH_SOCK: agent.socket };
  const agentProxy = ['-o', `ProxyCommand=${[process.execPath, CLI, 'ssh-proxy', '%h', '%p', '-i', `${carol}.pub`, ...identity.slice(2)].join(' ')}`];
  const viaAgent = (): Promise<ExecResult> => execIn(topo.client.ns, patient(sshd.ssh(host, SSH_PORT, ['true'], agentProxy)), { timeoutMs: 60_000, env: agentEnv });
  await timed(viaAgent, 'warm-up ssh via ssh-proxy with the agent');
  const sshAgent: number[] = [];
  const sshPlainPaired: number[] = [];
  for (let i = 0; i < AGENT_RUNS; i++) {
    sshAgent.push((await timed(viaAgent, 'ssh via ssh-proxy with the agent')).ms);
    sshPlainPaired.push((await timed(() => inClient(patient(sshd.ssh(host, SSH_PORT, ['true']))), 'plain ssh')).ms);
  }
  const med = (xs: readonly number[]): number => percentile([...xs].sort((a, b) => a - b), 50);

  const sortedReported = [...reported].sort((a, b) => a - b);
  console.log(`sesame client benchmark (node ${process.version}; wall time from the host around \`ip netns exec <client> ...\`; net = minus the median of \`node -e 0\`)`);
  console.log(table([
    { label: 'ip netns exec ... node -e 0', ms: bare },
    { label: 'sesame knock --wait, fresh port', ms: fresh, minusMs: bareMedian },
    { label: 'sesame knock --wait, port already open', ms: open, minusMs: bareMedian },
    { label: 'ssh true via ssh-proxy, fresh port', ms: sshFresh, minusMs: bareMedian },
    { label: 'ssh true via ssh-proxy, port already open', ms: sshProxyOpen, minusMs: bareMedian },
    { label: 'ssh true, plain, port already open', ms: sshPlain },
    { label: 'ssh true via ssh-proxy -i KEY.pub (ssh-agent signs), port open', ms: sshAgent },
    { label: 'ssh true, plain, port open (interleaved with the row above)', ms: sshPlainPaired },
  ]));
  if (retried.length > 0) console.log(`runs repeated after a failure (not counted): ${retried.length}\n  ${retried.join('\n  ')}`);
  console.log(`ssh-proxy with the agent costs ${(med(sshAgent) - med(sshPlainPaired)).toFixed(0)} ms over plain ssh (medians of ${AGENT_RUNS} interleaved runs each; target <= 100 ms)`);
  console.log(`knock-to-open as the CLI reports it ("N ms after the knock"), fresh ports: median ${percentile(sortedReported, 50)} ms, p95 ${percentile(sortedReported, 95)} ms over ${sortedReported.length} runs`);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await topo.destroy();
  dir.remove();
}

// Start-up, on the host (no namespace): `sesame knock --print-packet` against `node -e 0`, interleaved.
console.log(startupTable(process.execPath, process.version, await measureStartup(process.execPath)));
