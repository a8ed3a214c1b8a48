// Flood resilience side by side (issue 16): fwknopd (UDP server mode) and sesame (dgram capture) on the same namespace topology, one daemon at a
// time, each through five 10 s floods of the knock port from a raw socket in the client namespace: (a) junk from one other address, (b) junk
// from 4,096 forged source addresses, (c) junk forging the legitimate user's own address, (d) sesame's valid slot token followed by junk (an
// insider who holds server.pub), from 4,096 forged sources, (e) the same with a valid mac1 too, so each packet costs sesame a box open. Meanwhile the user knocks every 500 ms (each knock opens its own port, probed
// until open, 3 s at most). Prints served/sent, median latency of served knocks, daemon CPU and the flood's rate; asserts nothing.
// Needs root; installs fwknop from apt if missing; only touches the sesame-* namespaces and temp dirs it creates.
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom, tokenBytes } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { buildSpaPackets, ensureFwknop, Fwknopd, fwknopdVersion, makeFwknopDir } from '../helpers/fwknop.ts';
import type { FwknopOptions } from '../helpers/fwknop.ts';
import { execIn } from '../../src/harness/netns.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { startListeners } from './listeners.ts';
import { percentile, treeCpu } from './measure.ts';

const DRIVER = fileURLToPath(new URL('./compare-driver.js', import.meta.url));
const RAW = fileURLToPath(new URL('../../../test/tools/flood-raw4.py', import.meta.url));
const KNOCK_PORT = 62201;
const SECONDS = Number(process.env['FLOOD_SECONDS'] ?? '10');
/** fwknopd's access.conf line holds about 100 ports: 16 per flood at most. */
const KNOCK_EVERY_MS = 500;
/** Knocks per scenario: as many as fit in the flood's last SECONDS - 2 s (the driver's clock ends the run). */
const KNOCKS = Math.ceil(((SECONDS - 2) * 1000) / KNOCK_EVERY_MS);
const FORGED = 4096;
const SCENARIOS = ['a', 'b', 'c', 'd', 'e'] as const;
type Scenario = (typeof SCENARIOS)[number];
const TITLE: Record<Scenario, string> = {
  a: '(a) junk from one other address',
  b: `(b) junk from ${FORGED.toLocaleString('en')} forged sources`,
  c: "(c) junk forging the user's address",
  d: `(d) valid token + junk, ${FORGED.toLocaleString('en')} forged sources`,
  e: `(e) valid token and mac1 + junk box, ${FORGED.toLocaleString('en')} forged sources`,
};
/** Each scenario opens its own ports, so a grant left from the one before cannot answer a probe. */
const portsOf = (s: Scenario): number[] => Array.from({ length: KNOCKS }, (_, i) => 20_000 + SCENARIOS.indexOf(s) * 100 + i);
const ALL_PORTS = SCENARIOS.flatMap(portsOf);

const say = (s: string): void => void process.stderr.write(`[flood] ${s}\n`);

interface Result { served: number; sent: number; medianMs: number; cpuPercent: number; floodPps: number }

/** What an insider (a holder of sesame's server.pub) puts in: the current slot token and the mac1 key. */
interface Insider { readonly tokenHex: string; readonly mac1KeyHex: string }

/** The raw flooder's arguments for a scenario; fwknopd's floods in (d) and (e) are the same junk without sesame's values. */
function floodArgs(topo: Topology, s: Scenario, insider?: Insider): Record<string, unknown> {
  const base = { dst: topo.server.v4, port: KNOCK_PORT, seconds: SECONDS, maxPackets: 5_000_000, bytes: 193, sourceBase: '10.250' };
  if (s === 'a') return { ...base, sources: 1, source: topo.client.v4b };
  if (s === 'b') return { ...base, sources: FORGED };
  if (s === 'c') return { ...base, sources: 1, source: topo.client.v4 };
  if (s === 'd') return { ...base, sources: FORGED, ...(insider === undefined ? {} : { tokenHex: insider.tokenHex }) };
  return { ...base, sources: FORGED, ...(insider === undefined ? {} : insider) };
}

/** One flood with the user knocking through it; the daemon's CPU over the flood. */
async function scenario(topo: Topology, dir: string, pid: number, s: Scenario, packets: readonly Uint8Array[], insider?: Insider): Promise<Result> {
  const file = `${dir}/during-${s}.hex`;
  writeFileSync(file, packets.map((p) => Buffer.from(p).toString('hex')).join('\n'));
  const cpu0 = treeCpu(pid).total;
  const t0 = Date.now();
  const flooding = execIn(topo.client.ns, ['python3', RAW, JSON.stringify(floodArgs(topo, s, insider))], { timeoutMs: (SECONDS + 30) * 1000 });
  await sleep(1000);
  const knocking = await execIn(topo.client.ns, [process.execPath, DRIVER, JSON.stringify({ mode: 'during', host: topo.server.v4, knockPort: KNOCK_PORT, packetsFile: file, ports: portsOf(s), durationMs: (SECONDS - 2) * 1000, intervalMs: KNOCK_EVERY_MS })], { timeoutMs: (SECONDS + 30) * 1000 });
  const flood = await flooding;
  const cpu1 = treeCpu(pid).total;
  const elapsed = (Date.now() - t0) / 1000;
  rmSync(file, { force: true });
  if (knocking.code !== 0 || flood.code !== 0) throw new Error(`driver or flooder failed: ${knocking.stderr} ${flood.stderr}`);
  const latencies = (JSON.parse(knocking.stdout) as { latenciesMs: (number | null)[] }).latenciesMs.map((x) => x ?? Infinity);
  const served = latencies.filter(Number.isFinite).sort((x, y) => x - y);
  const sent = (JSON.parse(flood.stdout) as { sent: number; seconds: number });
  await sleep(1000);
  return { served: served.length, sent: latencies.length, medianMs: percentile(served, 50), cpuPercent: (100 * (cpu1 - cpu0)) / elapsed, floodPps: sent.sent / sent.seconds };
}

async function fwknopRun(): Promise<Record<Scenario, Result>> {
  const topo = await createTopology('floodfwk');
  const opts: FwknopOptions = { udpServer: true, interface: 'veth-srv', openPorts: ALL_PORTS.map((p) => `tcp/${p}`), accessTimeoutSeconds: 30 };
  const setup = makeFwknopDir(opts);
  let daemon: Fwknopd | undefined;
  try {
    await startListeners(topo.server.ns, ALL_PORTS);
    for (const rule of [['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'], ['-p', 'tcp', '--dport', `${ALL_PORTS[0]}:${ALL_PORTS.at(-1)}`, '-j', 'DROP']]) {
      const r = await execIn(topo.server.ns, ['iptables', '-A', 'INPUT', ...rule]);
      if (r.code !== 0) throw new Error(`iptables failed: ${r.stderr}`);
    }
    daemon = new Fwknopd(topo.server.ns, setup, opts);
    await daemon.ready();
    const out = {} as Record<Scenario, Result>;
    for (const s of SCENARIOS) {
      const packets = await buildSpaPackets(topo.client.ns, setup, topo.server.v4, portsOf(s).map((p) => ({ access: `tcp/${p}`, allowIp: topo.client.v4 })));
      say(`fwknopd ${TITLE[s]}`);
      out[s] = await scenario(topo, setup.dir, daemon.pid, s, packets);
    }
    return out;
  } finally {
    await daemon?.kill('SIGKILL');
    await topo.destroy();
    setup.remove();
  }
}

async function sesameRun(): Promise<Record<Scenario, Result>> {
  const topo = await createTopology('floodses');
  const dir = makeServerDir({ knockPort: KNOCK_PORT, protect: ALL_PORTS.map((p) => `tcp/${p}`) });
  let daemon: Daemon | undefined;
  try {
    const alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice, { ports: ALL_PORTS.map((p) => `tcp/${p}`) }) });
    await startListeners(topo.server.ns, ALL_PORTS);
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 15_000);
    const out = {} as Record<Scenario, Result>;
    for (const s of SCENARIOS) {
      const packets = portsOf(s).map((port) => buildKnock({ access: [{ proto: 'tcp', port }] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom));
      say(`sesame ${TITLE[s]}`);
      const insider = { tokenHex: Buffer.from(tokenBytes(dir.serverKeys.publicKey, Date.now())).toString('hex'), mac1KeyHex: Buffer.from(dir.serverKeys.mac1Key).toString('hex') };
      out[s] = await scenario(topo, dir.dir, daemon.pid ?? 0, s, packets, insider);
    }
    await daemon.kill('SIGTERM');
    say(`sesame dropped, by reason: ${JSON.stringify(daemon.events.find((e) => e.event === 'server.stopped')?.['dropped'] ?? {})}`);
    return out;
  } finally {
    await daemon?.kill('SIGKILL').catch(() => {});
    await topo.destroy();
    dir.remove();
  }
}

function printTable(f: Record<Scenario, Result>, s: Record<Scenario, Result>): void {
  const cell = (r: Result): string[] => [`${r.served}/${r.sent}`, Number.isFinite(r.medianMs) ? `${r.medianMs.toFixed(1)} ms` : '-', `${r.cpuPercent.toFixed(0)}%`, `${Math.round(r.floodPps / 1000)}k/s`];
  const header = ['flood', 'fwknopd served', 'median', 'CPU', 'flood rate', 'sesame served', 'median', 'CPU', 'flood rate'];
  const rows = SCENARIOS.map((k) => [TITLE[k], ...cell(f[k]), ...cell(s[k])]);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const why = skipReason();
  if (why !== undefined) {
    console.error(`bench:flood cannot run here: ${why}`);
    process.exit(2);
  }
  ensureFwknop(say);
  await loadSodium();
  const f = await fwknopRun();
  const s = await sesameRun();
  console.log(`floods of ${SECONDS} s on the knock port (raw socket, one Python process), the user knocking every ${KNOCK_EVERY_MS} ms, each knock probed until its port opens (3 s at most); ${fwknopdVersion()} (UDP server mode) vs sesame dgram on node ${process.version}; CPU = daemon + children over the flood, % of one core`);
  printTable(f, s);
}
