// Server benchmark: the real daemon in a namespace; knock-to-open latency, valid knocks processed per second, CPU per knock and RSS. Prints figures; asserts nothing.
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { startTcpListener } from '../../src/harness/programs.ts';
import { createTopology } from '../../src/harness/topology.ts';
import { percentile, rssMiB, treeCpu } from './measure.ts';

const DRIVER = fileURLToPath(new URL('./knock-driver.js', import.meta.url));
const FIRST_PORT = 20000;
const LATENCY_KNOCKS = Number(process.env['LATENCY_KNOCKS'] ?? '40');
const FLOOD_KNOCKS = Number(process.env['FLOOD_KNOCKS'] ?? '4000');

interface ServerFigures {
  latency: number[];
  /** Inside the daemon: packet received to nft acknowledged. */
  openMs: number[];
  accepted: number;
  offered: number;
  perSecondWall: number;
  perCpuSecond: number;
  cpuPer1000: number;
  idleRss: number;
  loadedRss: number;
}

/** One daemon in its own topology: latency over distinct ports, then a burst of distinct valid knocks. */
export async function serverRun(tag: string, captureArgs: readonly string[]): Promise<ServerFigures> {
  const topo = await createTopology(tag);
  const ports = Array.from({ length: LATENCY_KNOCKS }, (_, i) => FIRST_PORT + i);
  const dir = makeServerDir({
    knockPort: 62201,
    protect: ports.map((p) => `tcp/${p}`),
    maxDurationSeconds: 600,
    logLevel: 'info',
    limits: { perSourcePerSecond: 100_000, perSourceBurst: 100_000, kernelPerSourcePerSecond: 1_000_000, kernelPerSourceBurst: 1_000_000 },
  });
  try {
    const alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice, { ports: ports.map((p) => `tcp/${p}`) }) });
    const listeners = await Promise.all(ports.map((p) => startTcpListener(topo.server.ns, '0.0.0.0', p)));
    const daemon = new Daemon(topo.server.ns, dir.configPath, captureArgs);
    await daemon.event('server.started', 10_000);
    const pid = daemon.pid ?? 0;
    await sleep(1000);
    const idleRss = rssMiB(pid);
    const drive = async (a: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const r = await execIn(topo.client.ns, [process.execPath, DRIVER, JSON.stringify({ host: topo.server.v4, knockPort: 62201, identity: `${dir.dir}/alice`, serverPub: dir.serverPubPath, ...a })], { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`driver failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    const { latenciesMs } = (await drive({ mode: 'latency', ports })) as { latenciesMs: number[] };
    const openMs = daemon.events.filter((e) => e.event === 'grant.opened').map((e) => Number(e['openMs'])).sort((a, b) => a - b);
    const acceptedBefore = daemon.events.filter((e) => e.event === 'knock.accepted').length;
    const cpu0 = treeCpu(pid).total;
    const flood = (await drive({ mode: 'flood', ports: [FIRST_PORT], count: FLOOD_KNOCKS, perBurst: 200, burstGapMs: 20 })) as { sent: number; startedMs: number };
    await sleep(1500);
    const cpu1 = treeCpu(pid).total;
    const accepted = daemon.events.filter((e) => e.event === 'knock.accepted').slice(acceptedBefore);
    const lastMs = Math.max(...accepted.map((e) => Date.parse(String(e['time']))));
    const loadedRss = rssMiB(pid);
    await daemon.kill('SIGTERM');
    for (const l of listeners) await l.stop();
    return {
      latency: [...latenciesMs].sort((a, b) => a - b),
      openMs,
      accepted: accepted.length,
      offered: flood.sent,
      perSecondWall: accepted.length / ((lastMs - flood.startedMs) / 1000),
      perCpuSecond: accepted.length / Math.max(0.01, cpu1 - cpu0),
      cpuPer1000: (1000 * (cpu1 - cpu0)) / Math.max(1, accepted.length),
      idleRss,
      loadedRss,
    };
  } finally {
    await topo.destroy();
    dir.remove();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await loadSodium();
  const udp = await serverRun('bench', []);
  const pcap = await serverRun('benchpcap', ['--capture', 'pcap', '--interface', 'veth-srv']);
  const row = (label: string, f: (x: ServerFigures) => string): string => `${label.padEnd(44)} ${f(udp).padStart(14)} ${f(pcap).padStart(14)}`;
  console.log(`sesame server benchmark (node ${process.version}, nftables backend; one daemon at a time, client in another namespace)`);
  console.log(`${''.padEnd(44)} ${'dgram'.padStart(14)} ${'pcap'.padStart(14)}`);
  console.log(row(`knock-to-open latency median (${LATENCY_KNOCKS} knocks)`, (x) => `${percentile(x.latency, 50).toFixed(2)} ms`));
  console.log(row('knock-to-open latency p95', (x) => `${percentile(x.latency, 95).toFixed(2)} ms`));
  console.log(row('  of which inside the daemon (median)', (x) => `${percentile(x.openMs, 50).toFixed(2)} ms`));
  console.log(row(`valid knocks accepted of ${FLOOD_KNOCKS} sent in bursts`, (x) => `${x.accepted}`));
  console.log(row('valid knocks per second (wall clock)', (x) => x.perSecondWall.toFixed(0)));
  console.log(row('valid knocks per daemon CPU-second', (x) => x.perCpuSecond.toFixed(0)));
  console.log(row('daemon CPU-seconds per 1,000 knocks', (x) => x.cpuPer1000.toFixed(2)));
  console.log(row('daemon RSS idle', (x) => `${x.idleRss.toFixed(1)} MiB`));
  console.log(row('daemon RSS after the burst', (x) => `${x.loadedRss.toFixed(1)} MiB`));
}
