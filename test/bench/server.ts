// Server benchmark: the real daemon in a namespace; knock-to-open latency, valid knocks processed per second, CPU per knock and RSS. Prints figures; asserts nothing.
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadSodium } from '../../src/sodium.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { createTopology, execIn, startTcpListener } from '../helpers/netns.ts';
import { cpuSeconds, percentile, rssMiB } from './measure.ts';

const DRIVER = fileURLToPath(new URL('./knock-driver.js', import.meta.url));
const FIRST_PORT = 20000;
const LATENCY_KNOCKS = Number(process.env['LATENCY_KNOCKS'] ?? '40');
const FLOOD_KNOCKS = Number(process.env['FLOOD_KNOCKS'] ?? '4000');

await loadSodium();
const topo = await createTopology('bench');
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
  const daemon = new Daemon(topo.server.ns, dir.configPath);
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
  const sorted = [...latenciesMs].sort((a, b) => a - b);

  const acceptedBefore = daemon.events.filter((e) => e.event === 'knock.accepted').length;
  const cpu0 = cpuSeconds(pid);
  const flood = (await drive({ mode: 'flood', ports: [FIRST_PORT], count: FLOOD_KNOCKS, perBurst: 200, burstGapMs: 20 })) as { sent: number; startedMs: number };
  await sleep(1500);
  const cpu1 = cpuSeconds(pid);
  const accepted = daemon.events.filter((e) => e.event === 'knock.accepted').slice(acceptedBefore);
  const times = accepted.map((e) => Date.parse(String(e['time'])));
  const wallSeconds = (Math.max(...times) - flood.startedMs) / 1000;
  const loadedRss = rssMiB(pid);
  await daemon.kill('SIGTERM');
  for (const l of listeners) await l.stop();

  console.log(`sesame server benchmark (node ${process.version}, dgram capture, nftables backend)`);
  console.log(`knock-to-open latency over ${sorted.length} knocks: median ${percentile(sorted, 50).toFixed(2)} ms, p95 ${percentile(sorted, 95).toFixed(2)} ms, max ${percentile(sorted, 100).toFixed(2)} ms`);
  console.log(`valid knocks: ${accepted.length}/${flood.sent} accepted, ${(accepted.length / wallSeconds).toFixed(0)} /s wall clock (offered in bursts), ${(accepted.length / Math.max(0.01, cpu1 - cpu0)).toFixed(0)} per daemon CPU-second, ${((1000 * (cpu1 - cpu0)) / Math.max(1, accepted.length)).toFixed(2)} CPU-s per 1000 knocks`);
  console.log(`daemon RSS: idle ${idleRss.toFixed(1)} MiB, after the burst ${loadedRss.toFixed(1)} MiB`);
} finally {
  await topo.destroy();
  dir.remove();
}
