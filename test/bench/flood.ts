// Flood resilience: junk floods the knock port for 10 s (random bytes, wrong mac1, replays of one valid knock, all at once)
// while legitimate knocks arrive from another address. Reports their success rate and latency, daemon CPU and memory. Prints figures.
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener } from '../../src/harness/programs.ts';
import { createTopology } from '../../src/harness/topology.ts';
import { percentile, rssMiB, treeCpu } from './measure.ts';

const FLOODER = fileURLToPath(new URL('./flooder.js', import.meta.url));
const DRIVER = fileURLToPath(new URL('./knock-driver.js', import.meta.url));
const SECONDS = Number(process.env['FLOOD_SECONDS'] ?? '10');
const LEGIT_EVERY_MS = 250;

export interface FloodResult {
  offeredPps: number;
  legitSent: number;
  legitAccepted: number;
  latencyMedianMs: number;
  latencyP95Ms: number;
  daemonCpuPercent: number;
  rssBeforeMiB: number;
  rssMaxMiB: number;
  received: Record<string, number>;
}

export async function floodRun(tag: string, captureArgs: readonly string[] = [], limits: Record<string, number> = {}): Promise<FloodResult> {
  await loadSodium();
  const topo = await createTopology(tag);
  const dir = makeServerDir({ protect: ['tcp/2222'], limits });
  try {
    const alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice) });
    const listener = await startTcpListener(topo.server.ns, '0.0.0.0', 2222);
    const daemon = new Daemon(topo.server.ns, dir.configPath, captureArgs);
    await daemon.event('server.started', 10_000);
    const pid = daemon.pid ?? 0;
    const replayed = buildKnock({ access: [{ proto: 'tcp', port: 2222 }] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom);
    await sendUdp(topo.client.ns, topo.server.v4, 62201, replayed, topo.client.v4b);
    await daemon.event('knock.accepted', 3000);
    const rssBefore = rssMiB(pid);
    const cpu0 = treeCpu(pid).total;
    const flooders = (['random', 'badmac', 'replay'] as const).map((kind) =>
      execIn(topo.client.ns, [process.execPath, FLOODER, JSON.stringify({ host: topo.server.v4, port: 62201, from: topo.client.v4b, seconds: SECONDS, kind, packetHex: Buffer.from(replayed).toString('hex') })], { timeoutMs: (SECONDS + 30) * 1000 }),
    );
    await sleep(500);
    let rssMax = rssBefore;
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssMiB(pid)); }, 250);
    const since = daemon.events.length;
    const legit = await execIn(topo.client.ns, [process.execPath, DRIVER, JSON.stringify({ mode: 'paced', host: topo.server.v4, knockPort: 62201, identity: `${dir.dir}/alice`, serverPub: dir.serverPubPath, ports: [2222], count: Math.floor(((SECONDS - 1.5) * 1000) / LEGIT_EVERY_MS), intervalMs: LEGIT_EVERY_MS, from: topo.client.v4 })], { timeoutMs: (SECONDS + 30) * 1000 });
    clearInterval(sampler);
    if (legit.code !== 0) throw new Error(`legitimate sender failed: ${legit.stderr}`);
    const { sentAt } = JSON.parse(legit.stdout) as { sentAt: number[] };
    const results = await Promise.all(flooders);
    const cpu1 = treeCpu(pid).total;
    await sleep(1000);
    const accepted = daemon.events.slice(since).filter((e) => e.event === 'grant.opened' && e['address'] === topo.client.v4);
    // Each legitimate knock is matched to the first grant logged after it was sent.
    const latencies: number[] = [];
    let j = 0;
    for (const e of accepted) {
      const t = Date.parse(String(e['time']));
      while (j + 1 < sentAt.length && (sentAt[j + 1] ?? Infinity) <= t) j++;
      latencies.push(t - (sentAt[j] ?? t));
    }
    await daemon.kill('SIGTERM');
    const stopped = daemon.events.find((e) => e.event === 'server.stopped');
    await listener.stop();
    const sent = results.reduce((n, r) => n + (JSON.parse(r.stdout) as { sent: number }).sent, 0);
    const sorted = latencies.sort((x, y) => x - y);
    return {
      offeredPps: sent / SECONDS,
      legitSent: sentAt.length,
      legitAccepted: accepted.length,
      latencyMedianMs: percentile(sorted, 50),
      latencyP95Ms: percentile(sorted, 95),
      daemonCpuPercent: (100 * (cpu1 - cpu0)) / SECONDS,
      rssBeforeMiB: rssBefore,
      rssMaxMiB: rssMax,
      received: (stopped?.['dropped'] ?? {}) as Record<string, number>,
    };
  } finally {
    await topo.destroy();
    dir.remove();
  }
}

function report(title: string, r: FloodResult): void {
  console.log(`${title}: ${SECONDS} s of random bytes + wrong-mac1 packets + replays of one valid knock, ${Math.round(r.offeredPps).toLocaleString('en')} packets/s offered from one address`);
  console.log(`  daemon saw and dropped: ${Object.entries(r.received).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`  legitimate knocks from another address: ${r.legitAccepted}/${r.legitSent} accepted (${((100 * r.legitAccepted) / r.legitSent).toFixed(1)}%), knock-to-grant latency median ${r.latencyMedianMs} ms, p95 ${r.latencyP95Ms} ms (log timestamps, 1 ms resolution)`);
  console.log(`  daemon CPU during the flood ${r.daemonCpuPercent.toFixed(0)}% of one core; RSS ${r.rssBeforeMiB.toFixed(1)} MiB before, at most ${r.rssMaxMiB.toFixed(1)} MiB during`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  report('flood, default config (kernel meter on the knock port)', await floodRun('flood'));
  // The same flood with the kernel meter opened up: every junk packet reaches the daemon, as a flood from many sources would.
  report('flood, kernel meter disabled (the daemon sees every packet)', await floodRun('floodraw', [], { kernelPerSourcePerSecond: 1_000_000, kernelPerSourceBurst: 1_000_000 }));
}
