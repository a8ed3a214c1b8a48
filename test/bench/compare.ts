// Side-by-side benchmark: fwknopd (UDP server mode and pcap mode; Rijndael + HMAC-SHA256, iptables backend) and sesame (dgram and pcap
// capture; nftables) on the same namespace topology, one daemon at a time. Measures knock-to-open latency, valid distinct knocks processed
// per second, CPU per 1,000 knocks (daemon plus its iptables/nft child processes), idle and loaded RSS, per-knock cost with 1 vs 1,000
// users, and whether access is left open after SIGKILL plus the grant's timeout. Prints one table with ratios and the targets; asserts nothing.
// Needs root; installs fwknop from apt if missing; only touches the sesame-* namespaces and temp dirs it creates.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Access } from '../../src/protocol/access.ts';
import { parseAddress } from '../../src/protocol/address.ts';
import { checkKnock } from '../helpers/verdict.ts';
import { generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { decide } from '../../src/server/policy.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { parseUsers } from '../../src/server/users.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { buildSpaPackets, ensureFwknop, Fwknopd, fwknopdVersion, makeFwknopDir } from '../helpers/fwknop.ts';
import type { FwknopOptions, FwknopSetup } from '../helpers/fwknop.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { startListeners } from './listeners.ts';
import { percentile, treeCpu, treeRss } from './measure.ts';

const DRIVER = fileURLToPath(new URL('./compare-driver.js', import.meta.url));
const KNOCK_PORT = 62201;
const LATENCY_KNOCKS = Number(process.env['LATENCY_KNOCKS'] ?? '40');
const FLOOD_KNOCKS = Number(process.env['FLOOD_KNOCKS'] ?? '2000');
const USERS = Number(process.env['USERS'] ?? '1000');
/** Knocks per users run: sesame is cheap per knock, so it needs more of them for the CPU clock (10 ms ticks) to resolve the cost. */
const USERS_KNOCKS_SESAME = Number(process.env['USERS_KNOCKS_SESAME'] ?? '2000');
const USERS_KNOCKS_FWKNOP = Number(process.env['USERS_KNOCKS_FWKNOP'] ?? '300');
const FIRST_LATENCY_PORT = 20000;
const LATENCY_PORTS = Array.from({ length: LATENCY_KNOCKS }, (_, i) => FIRST_LATENCY_PORT + i);
const FLOOD_PORT = 2222;
const ALL_PORTS = [FLOOD_PORT, ...LATENCY_PORTS];
const ACCESS_TIMEOUT_S = 30;
const KILL_TIMEOUT_S = 5;
const FLOOD_BURST = { perBurst: 200, burstGapMs: 20 };
const USERS_BURST = { perBurst: 25, burstGapMs: 20 };
/** Knocks sent before each users run is measured (sesame's JIT warms up; fwknopd gets the same). */
const USERS_WARMUP = 100;

const say = (s: string): void => void process.stderr.write(`[compare] ${s}\n`);

/** Temp dirs still on disk: removed on any exit, also on SIGINT/SIGTERM (the netns harness removes its namespaces on the same exit). */
const cleanups = new Set<() => void>();
process.on('exit', () => { for (const c of cleanups) c(); });
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.on(signal, () => process.exit(code));
/** JSON turns Infinity (a port that never opened) into null. */
const latencies = (r: Record<string, unknown>): number[] => (r['latenciesMs'] as (number | null)[]).map((x) => x ?? Infinity).sort((a, b) => a - b);

function tracked<T extends { remove(): void }>(x: T): T {
  const c = (): void => x.remove();
  cleanups.add(c);
  return { ...x, remove: () => { cleanups.delete(c); x.remove(); } };
}

// ---------------------------------------------------------------------------------------------------------------------------------

interface Figures {
  latencyMs: number[];
  /** sesame only: inside the daemon, packet received to nft acknowledged (grant.opened's openMs), for the latency knocks. */
  openMs?: number[];
  floodSent: number;
  floodAccepted: number;
  perSecond: number;
  cpuPer1000: number;
  childCpuPer1000: number;
  idleRss: { total: number; main: number };
  loadedRss: { total: number; main: number };
  killOpenBefore: boolean;
  killOpenAfter: boolean;
  killLeft: number;
}

interface UsersFigures { knocks: number; accepted: number; msPerKnock: number }

async function drive(topo: Topology, dir: string, packets: readonly Uint8Array[], a: Record<string, unknown>): Promise<Record<string, unknown>> {
  const file = `${dir}/packets-${Date.now()}.hex`;
  writeFileSync(file, packets.map((p) => Buffer.from(p).toString('hex')).join('\n'));
  const r = await execIn(topo.client.ns, [process.execPath, DRIVER, JSON.stringify({ host: topo.server.v4, knockPort: KNOCK_PORT, packetsFile: file, ...a })], { timeoutMs: 300_000 });
  rmSync(file, { force: true });
  if (r.code !== 0) throw new Error(`driver failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** Polls a counter until it has not changed for quietMs (after the sender finished); returns when it last changed. */
async function waitQuiet(read: () => number, sending: Promise<unknown>, quietMs: number, maxMs = 180_000): Promise<number> {
  let done = false;
  sending.then(() => { done = true; }, () => { done = true; }); // a failed sender is reported by the await below
  let last = read();
  let changedAt = Date.now();
  const start = Date.now();
  while (Date.now() - start < maxMs) {
    await sleep(5);
    const v = read();
    if (v !== last) { last = v; changedAt = Date.now(); }
    if (done && Date.now() - changedAt >= quietMs) break;
  }
  await sending;
  return changedAt;
}

async function portClosed(topo: Topology, port: number): Promise<void> {
  if (await tcpConnect(topo.client.ns, topo.server.v4, port, 300)) throw new Error(`port ${port} accepts connections before any knock: the firewall setup is wrong`);
}

/** Opens until it accepts from the given address, or gives up after ms. */
async function waitOpen(topo: Topology, port: number, from: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) if (await tcpConnect(topo.client.ns, topo.server.v4, port, 200, from)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------------------------------------------
// fwknopd

function fwknopOptions(udpServer: boolean, fillerStanzas = 0): FwknopOptions {
  return { udpServer, interface: 'veth-srv', openPorts: ALL_PORTS.map((p) => `tcp/${p}`), accessTimeoutSeconds: ACCESS_TIMEOUT_S, fillerStanzas };
}

/**
 * fwknopd's iptables backend only adds ACCEPT rules in FWKNOP_INPUT (jumped to from INPUT position 1, inserted by fwknopd at start);
 * closing the ports is the admin's job: the usual established/related accept (sesame's chain has the same), then DROP, in the server
 * namespace only.
 */
async function dropProtectedPorts(topo: Topology): Promise<void> {
  for (const rule of [
    ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
    ['-p', 'tcp', '-m', 'multiport', '--dports', `${FLOOD_PORT},${LATENCY_PORTS[0]}:${LATENCY_PORTS.at(-1)}`, '-j', 'DROP'],
  ]) {
    const r = await execIn(topo.server.ns, ['iptables', '-A', 'INPUT', ...rule]);
    if (r.code !== 0) throw new Error(`iptables in ${topo.server.ns} failed: ${r.stderr}`);
  }
}

async function fwknopRun(udpServer: boolean): Promise<Figures> {
  const topo = await createTopology(udpServer ? 'cmpfwku' : 'cmpfwkp');
  const opts = fwknopOptions(udpServer);
  const setup = tracked(makeFwknopDir(opts));
  let daemon: Fwknopd | undefined;
  try {
    await startListeners(topo.server.ns, ALL_PORTS);
    await dropProtectedPorts(topo);
    await portClosed(topo, FLOOD_PORT);
    daemon = new Fwknopd(topo.server.ns, setup, opts);
    await daemon.ready();
    const pid = daemon.pid;
    await sleep(1000);
    const idleRss = treeRss(pid);

    const latencyPackets = await buildSpaPackets(topo.client.ns, setup, topo.server.v4, LATENCY_PORTS.map((p) => ({ access: `tcp/${p}`, allowIp: topo.client.v4 })));
    const latencyMs = latencies(await drive(topo, setup.dir, latencyPackets, { mode: 'latency', ports: LATENCY_PORTS }));

    const floodPackets = await buildSpaPackets(topo.client.ns, setup, topo.server.v4, Array.from({ length: FLOOD_KNOCKS }, () => ({ access: `tcp/${FLOOD_PORT}`, allowIp: topo.client.v4 })));
    const d = daemon;
    const before = d.digestCount();
    const cpu0 = treeCpu(pid);
    const sending = drive(topo, setup.dir, floodPackets, { mode: 'flood', ...FLOOD_BURST });
    const lastMs = await waitQuiet(() => d.digestBytes(), sending, 2000);
    const flood = (await sending) as { sent: number; startedMs: number };
    const cpu1 = treeCpu(pid);
    const accepted = d.digestCount() - before;
    const loadedRss = treeRss(pid);

    const kill = await fwknopKill(topo, setup, d);
    return {
      latencyMs,
      floodSent: flood.sent,
      floodAccepted: accepted,
      perSecond: accepted / ((lastMs - flood.startedMs) / 1000),
      cpuPer1000: (1000 * (cpu1.total - cpu0.total)) / Math.max(1, accepted),
      childCpuPer1000: (1000 * (cpu1.children - cpu0.children)) / Math.max(1, accepted),
      idleRss,
      loadedRss,
      ...kill,
    };
  } catch (e) {
    if (daemon !== undefined) say(`fwknopd log tail:\n${daemon.log().slice(-3000)}`);
    throw e;
  } finally {
    await daemon?.kill('SIGKILL');
    await topo.destroy();
    setup.remove();
  }
}

/** A grant with a short timeout from the client's second address, then SIGKILL, then wait past the timeout and look. */
async function fwknopKill(topo: Topology, setup: FwknopSetup, daemon: Fwknopd): Promise<Pick<Figures, 'killOpenBefore' | 'killOpenAfter' | 'killLeft'>> {
  const [packet] = await buildSpaPackets(topo.client.ns, setup, topo.server.v4, [{ access: `tcp/${FLOOD_PORT}`, allowIp: topo.client.v4b, timeoutSeconds: KILL_TIMEOUT_S }]);
  if (packet === undefined) throw new Error('no packet');
  await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, packet, topo.client.v4b);
  const openBefore = await waitOpen(topo, FLOOD_PORT, topo.client.v4b, 3000);
  const openedAt = Date.now();
  await daemon.kill('SIGKILL');
  await sleep(Math.max(0, openedAt + (KILL_TIMEOUT_S + 2) * 1000 - Date.now()));
  const openAfter = await tcpConnect(topo.client.ns, topo.server.v4, FLOOD_PORT, 500, topo.client.v4b);
  const rules = (await execIn(topo.server.ns, ['iptables', '-S', 'FWKNOP_INPUT'])).stdout;
  return { killOpenBefore: openBefore, killOpenAfter: openAfter, killLeft: rules.split('\n').filter((l) => l.includes(`${topo.client.v4b}/32`)).length };
}

async function fwknopUsers(stanzas: number): Promise<UsersFigures> {
  const topo = await createTopology(`cmpfwkn${stanzas}`);
  const opts = fwknopOptions(true, stanzas - 1);
  const setup = tracked(makeFwknopDir(opts));
  let daemon: Fwknopd | undefined;
  try {
    await dropProtectedPorts(topo);
    daemon = new Fwknopd(topo.server.ns, setup, opts);
    await daemon.ready(30_000);
    await sleep(500);
    const all = await buildSpaPackets(topo.client.ns, setup, topo.server.v4, Array.from({ length: USERS_WARMUP + USERS_KNOCKS_FWKNOP }, () => ({ access: `tcp/${FLOOD_PORT}`, allowIp: topo.client.v4 })));
    const d = daemon;
    // The same warm-up as sesame's (which needs it for its JIT): not measured.
    await waitQuiet(() => d.digestBytes(), drive(topo, setup.dir, all.slice(0, USERS_WARMUP), { mode: 'flood', ...USERS_BURST }), 1000);
    const packets = all.slice(USERS_WARMUP);
    const before = d.digestCount();
    const cpu0 = treeCpu(d.pid);
    await waitQuiet(() => d.digestBytes(), drive(topo, setup.dir, packets, { mode: 'flood', ...USERS_BURST }), 2000);
    const cpu1 = treeCpu(d.pid);
    const accepted = d.digestCount() - before;
    return { knocks: packets.length, accepted, msPerKnock: (1000 * (cpu1.total - cpu0.total)) / Math.max(1, accepted) };
  } catch (e) {
    if (daemon !== undefined) say(`fwknopd log tail:\n${daemon.log().slice(-3000)}`);
    throw e;
  } finally {
    await daemon?.kill('SIGKILL');
    await topo.destroy();
    setup.remove();
  }
}

// ---------------------------------------------------------------------------------------------------------------------------------
// sesame

const tcp = (port: number): Access => ({ proto: 'tcp', port });

function sesameDir(): ServerDir {
  return makeServerDir({
    knockPort: KNOCK_PORT,
    protect: ALL_PORTS.map((p) => `tcp/${p}`),
    defaultDurationSeconds: ACCESS_TIMEOUT_S,
    maxDurationSeconds: 600,
    logLevel: 'info',
    // Every knock comes from one address: the per-source limits (user space and kernel meter) would otherwise be what is measured.
    limits: { perSourcePerSecond: 100_000, perSourceBurst: 100_000, kernelPerSourcePerSecond: 1_000_000, kernelPerSourceBurst: 1_000_000 },
  });
}

const captureArgs = (pcap: boolean): string[] => (pcap ? ['--capture', 'pcap', '--interface', 'veth-srv'] : []);

async function sesameRun(pcap: boolean): Promise<Figures> {
  const topo = await createTopology(pcap ? 'cmpsesp' : 'cmpsesd');
  const dir = tracked(sesameDir());
  let daemon: Daemon | undefined;
  try {
    const alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice, { ports: ALL_PORTS.map((p) => `tcp/${p}`) }) });
    await startListeners(topo.server.ns, ALL_PORTS);
    daemon = new Daemon(topo.server.ns, dir.configPath, captureArgs(pcap));
    await daemon.event('server.started', 15_000);
    await portClosed(topo, FLOOD_PORT);
    const pid = daemon.pid ?? 0;
    await sleep(1000);
    const idleRss = treeRss(pid);
    const server = dir.serverKeys.publicKey;

    const latencyPackets = LATENCY_PORTS.map((p) => buildKnock({ access: [tcp(p)] }, alice, server, Date.now(), systemRandom));
    const latencyMs = latencies(await drive(topo, dir.dir, latencyPackets, { mode: 'latency', ports: LATENCY_PORTS }));
    const openMs = daemon.events.filter((e) => e.event === 'grant.opened').map((e) => Number(e['openMs'])).sort((a, b) => a - b);

    const floodPackets = Array.from({ length: FLOOD_KNOCKS }, () => buildKnock({ access: [tcp(FLOOD_PORT)] }, alice, server, Date.now(), systemRandom));
    const d = daemon;
    const since = d.events.length;
    const cpu0 = treeCpu(pid);
    const sending = drive(topo, dir.dir, floodPackets, { mode: 'flood', ...FLOOD_BURST });
    await waitQuiet(() => d.events.length, sending, 1500);
    const flood = (await sending) as { sent: number; startedMs: number };
    const cpu1 = treeCpu(pid);
    const accepted = d.events.slice(since).filter((e) => e.event === 'knock.accepted');
    const lastMs = Math.max(...accepted.map((e) => Date.parse(String(e['time']))));
    const loadedRss = treeRss(pid);

    const kill = await sesameKill(topo, dir, alice, d);
    return {
      latencyMs,
      openMs,
      floodSent: flood.sent,
      floodAccepted: accepted.length,
      perSecond: accepted.length / ((lastMs - flood.startedMs) / 1000),
      cpuPer1000: (1000 * (cpu1.total - cpu0.total)) / Math.max(1, accepted.length),
      childCpuPer1000: (1000 * (cpu1.children - cpu0.children)) / Math.max(1, accepted.length),
      idleRss,
      loadedRss,
      ...kill,
    };
  } catch (e) {
    if (daemon !== undefined) say(`sesame stderr: ${daemon.stderr.join('').slice(-3000)}; last events: ${JSON.stringify(daemon.events.slice(-5))}`);
    throw e;
  } finally {
    await daemon?.kill('SIGKILL');
    await topo.destroy();
    dir.remove();
  }
}

async function sesameKill(topo: Topology, dir: ServerDir, alice: UserKeys, daemon: Daemon): Promise<Pick<Figures, 'killOpenBefore' | 'killOpenAfter' | 'killLeft'>> {
  const since = daemon.events.length;
  await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, buildKnock({ access: [tcp(FLOOD_PORT)], durationSeconds: KILL_TIMEOUT_S }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom), topo.client.v4b);
  await daemon.waitFor((e) => e.event === 'grant.opened' && e['address'] === topo.client.v4b, 5000, since);
  const openBefore = await waitOpen(topo, FLOOD_PORT, topo.client.v4b, 3000);
  const openedAt = Date.now();
  await daemon.kill('SIGKILL');
  await sleep(Math.max(0, openedAt + (KILL_TIMEOUT_S + 2) * 1000 - Date.now()));
  const openAfter = await tcpConnect(topo.client.ns, topo.server.v4, FLOOD_PORT, 500, topo.client.v4b);
  const set = (await execIn(topo.server.ns, ['nft', 'list', 'map', 'inet', 'sesame', 'allow4'])).stdout;
  return { killOpenBefore: openBefore, killOpenAfter: openAfter, killLeft: set.split(topo.client.v4b).length - 1 };
}

async function sesameUsers(count: number): Promise<UsersFigures> {
  const topo = await createTopology(`cmpsesn${count}`);
  const dir = tracked(sesameDir());
  let daemon: Daemon | undefined;
  try {
    const users: Record<string, unknown> = {};
    for (let i = 0; i < count - 1; i++) users[`user${i}`] = userEntry(generateUserKeys(), { ports: [`tcp/${FLOOD_PORT}`] });
    const alice = dir.userKey('alice');
    users['alice'] = userEntry(alice, { ports: [`tcp/${FLOOD_PORT}`] }); // listed last
    dir.writeUsers(users);
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 15_000);
    await sleep(500);
    const d = daemon;
    const knocks = (n: number): Uint8Array[] => Array.from({ length: n }, () => buildKnock({ access: [tcp(FLOOD_PORT)] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom));
    await waitQuiet(() => d.events.length, drive(topo, dir.dir, knocks(USERS_WARMUP), { mode: 'flood', ...USERS_BURST }), 1000);
    const packets = knocks(USERS_KNOCKS_SESAME);
    const since = d.events.length;
    const cpu0 = treeCpu(d.pid ?? 0);
    await waitQuiet(() => d.events.length, drive(topo, dir.dir, packets, { mode: 'flood', ...USERS_BURST }), 1500);
    const cpu1 = treeCpu(d.pid ?? 0);
    const accepted = d.events.slice(since).filter((e) => e.event === 'knock.accepted').length;
    return { knocks: packets.length, accepted, msPerKnock: (1000 * (cpu1.total - cpu0.total)) / Math.max(1, accepted) };
  } catch (e) {
    if (daemon !== undefined) say(`sesame stderr: ${daemon.stderr.join('').slice(-3000)}`);
    throw e;
  } finally {
    await daemon?.kill('SIGKILL');
    await topo.destroy();
    dir.remove();
  }
}

/** In-process check + key lookup + policy per knock (as bench/users.ts), without the daemon's I/O: the finer-grained view of the same
 * question. The two tables are measured in alternating rounds after a warm-up of each, so JIT state and machine noise hit both alike. */
function sesameInProcessMicros(counts: readonly number[]): number[] {
  const server = generateServerKeys();
  const source = parseAddress('10.0.0.2');
  if (source === undefined || source instanceof Error) throw new Error('address');
  const bounds = { defaultDurationSeconds: 30, maxDurationSeconds: 300 };
  const setups = counts.map((userCount) => {
    const keys = Array.from({ length: userCount }, () => generateUserKeys());
    const users: Record<string, unknown> = {};
    keys.forEach((k, i) => {
      users[`user${i}`] = { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, k.publicKey, `u${i}`).trim() }], ports: ['tcp/22'] };
    });
    const table = parseUsers({ users }, 'bench-users.json');
    const last = keys[keys.length - 1] ?? generateUserKeys(); // the last one listed: no advantage from order
    const pool = Array.from({ length: 300 }, () => buildKnock({ access: [tcp(22)] }, last, server.publicKey, Date.now(), systemRandom));
    const once = (p: Uint8Array): void => {
      const r = checkKnock(p, { server, lookup: table.lookup, nowMs: Date.now(), windowMs: 30_000 });
      if (!r.ok) throw new Error(r.reason);
      const policy = table.policy(r.value.key.user);
      if (policy === undefined || !decide(r.value.payload, source, policy, bounds).ok) throw new Error('policy');
    };
    return { pool, once, rounds: [] as number[] };
  });
  for (const s of setups) for (const p of s.pool) s.once(p);
  // Short alternating rounds (100 knocks each, 30 per table): a slow phase of the machine hits both tables, and the minimum skips it.
  for (let round = 0; round < 10; round++) {
    for (let slice = 0; slice < 300; slice += 100) {
      for (const s of setups) {
        const part = s.pool.slice(slice, slice + 100);
        const start = performance.now();
        for (const p of part) s.once(p);
        s.rounds.push(((performance.now() - start) * 1000) / part.length);
      }
    }
  }
  return setups.map((s) => Math.min(...s.rounds)); // the least-disturbed round: machine noise only ever adds
}

// ---------------------------------------------------------------------------------------------------------------------------------

const fixed = (n: number, d = 2): string => (Number.isFinite(n) ? n.toFixed(d) : '∞');
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '—' : `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}×`);

function printTable(f: { fu: Figures; fp: Figures; sd: Figures; sp: Figures }, u: { f1: UsersFigures; fn: UsersFigures; s1: UsersFigures; sn: UsersFigures; inproc1: number; inprocN: number }): void {
  const { fu, fp, sd, sp } = f;
  const med = (x: Figures): number => percentile(x.latencyMs, 50);
  const p95 = (x: Figures): number => percentile(x.latencyMs, 95);
  const top = (x: Figures): number => percentile(x.latencyMs, 100);
  const yn = (b: boolean): string => (b ? 'yes' : 'no');
  type Row = [string, string, string, string, string, string, string];
  const num = (label: string, get: (x: Figures) => number, d = 2): Row => [label, fixed(get(fu), d), fixed(get(fp), d), fixed(get(sd), d), fixed(get(sp), d), ratio(get(sd), get(fu)), ratio(get(sp), get(fp))];
  const rows: Row[] = [
    [`knock-to-open latency, median (${LATENCY_KNOCKS} knocks), ms`, fixed(med(fu)), fixed(med(fp)), fixed(med(sd)), fixed(med(sp)), ratio(med(sd), med(fu)), ratio(med(sp), med(fp))],
    ['knock-to-open latency, p95, ms', fixed(p95(fu)), fixed(p95(fp)), fixed(p95(sd)), fixed(p95(sp)), ratio(p95(sd), p95(fu)), ratio(p95(sp), p95(fp))],
    ['knock-to-open latency, max, ms', fixed(top(fu)), fixed(top(fp)), fixed(top(sd)), fixed(top(sp)), ratio(top(sd), top(fu)), ratio(top(sp), top(fp))],
    [`valid knocks accepted of ${FLOOD_KNOCKS} sent in bursts`, String(fu.floodAccepted), String(fp.floodAccepted), String(sd.floodAccepted), String(sp.floodAccepted), ratio(sd.floodAccepted, fu.floodAccepted), ratio(sp.floodAccepted, fp.floodAccepted)],
    num('valid distinct knocks processed per second', (x) => x.perSecond, 0),
    num('CPU-seconds per 1,000 knocks (daemon + children)', (x) => x.cpuPer1000),
    num('  of which child processes (iptables / nft)', (x) => x.childCpuPer1000),
    num('RSS idle, MiB (daemon + resident helpers)', (x) => x.idleRss.total, 1),
    num('  daemon process alone', (x) => x.idleRss.main, 1),
    num('RSS after the burst, MiB (daemon + helpers)', (x) => x.loadedRss.total, 1),
    [`CPU ms per knock, 1 user/stanza (${USERS_KNOCKS_FWKNOP} / ${USERS_KNOCKS_SESAME} knocks)`, fixed(u.f1.msPerKnock, 3), '(same path)', fixed(u.s1.msPerKnock, 3), '(same path)', ratio(u.s1.msPerKnock, u.f1.msPerKnock), ''],
    [`CPU ms per knock, ${USERS.toLocaleString('en')} users/stanzas, match last`, fixed(u.fn.msPerKnock, 3), '', fixed(u.sn.msPerKnock, 3), '', ratio(u.sn.msPerKnock, u.fn.msPerKnock), ''],
    [`  cost ${USERS.toLocaleString('en')} users ÷ 1 user`, ratio(u.fn.msPerKnock, u.f1.msPerKnock), '', ratio(u.sn.msPerKnock, u.s1.msPerKnock), '', '', ''],
    [`  sesame in-process check+lookup+policy, µs (1 → ${USERS.toLocaleString('en')})`, '', '', `${fixed(u.inproc1, 1)} → ${fixed(u.inprocN, 1)}`, '', '', ''],
    ['grant open just before SIGKILL', yn(fu.killOpenBefore), yn(fp.killOpenBefore), yn(sd.killOpenBefore), yn(sp.killOpenBefore), '', ''],
    [`access left open after SIGKILL + ${KILL_TIMEOUT_S} s timeout (+2 s)`, yn(fu.killOpenAfter), yn(fp.killOpenAfter), yn(sd.killOpenAfter), yn(sp.killOpenAfter), '', ''],
    ['  rules / set elements for it still present', String(fu.killLeft), String(fp.killLeft), String(sd.killLeft), String(sp.killLeft), '', ''],
  ];
  const header: Row = ['', 'fwknopd UDP', 'fwknopd pcap', 'sesame dgram', 'sesame pcap', 'dgram÷UDP', 'pcap÷pcap'];
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i]?.length ?? 0)));
  const line = (r: Row): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
  console.log('(ratios are sesame ÷ fwknopd: below 1 is better for latency, CPU and memory, above 1 is better for knocks per second)');
  console.log('');
  const pass = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const latX = med(fu) / med(sd);
  const rateX = sd.perSecond / fu.perSecond;
  const flat = u.sn.msPerKnock / u.s1.msPerKnock;
  console.log('targets:');
  console.log(`  median latency, fwknopd UDP ÷ sesame dgram = ${latX.toFixed(1)}× (target ≥ 5×): ${pass(latX >= 5)}; fwknopd UDP ÷ sesame pcap = ${(med(fu) / med(sp)).toFixed(1)}×`);
  console.log(`  knocks per second, sesame dgram ÷ fwknopd UDP = ${rateX.toFixed(1)}× (target ≥ 20×): ${pass(rateX >= 20)}; sesame pcap ÷ fwknopd UDP = ${(sp.perSecond / fu.perSecond).toFixed(1)}×`);
  console.log(`  sesame per-knock cost 1 → ${USERS.toLocaleString('en')} users: ${flat.toFixed(2)}× through the daemon, ${(u.inprocN / u.inproc1).toFixed(2)}× in-process (target: flat, within ±15%): ${pass(flat <= 1.15 && flat >= 0.85)}`);
  const left = [sd, sp].some((x) => x.killOpenAfter || x.killLeft > 0);
  console.log(`  sesame access left after SIGKILL + timeout: ${left ? 'some' : 'none'} (target: none): ${pass(!left)}`);
  console.log('');
  const openMed = (x: Figures): string => fixed(percentile(x.openMs ?? [], 50));
  console.log('how measured:');
  console.log(`  latency: ${LATENCY_KNOCKS} knocks from one client address, each opening its own TCP port (${FIRST_LATENCY_PORT}-${LATENCY_PORTS.at(-1)}), packets built by each daemon's own client code; the same`);
  console.log('    driver sends one, then tries to connect every 2 ms until the port accepts (includes the probe\'s own ~1-2 ms granularity)');
  console.log(`    sesame's own log, packet received -> nft acknowledged, median: dgram ${openMed(sd)} ms, pcap ${openMed(sp)} ms`);
  console.log(`  throughput: ${FLOOD_KNOCKS} distinct valid knocks for tcp/${FLOOD_PORT} from one address, ${FLOOD_BURST.perBurst} every ${FLOOD_BURST.burstGapMs} ms; accepted = new fwknopd digest-cache lines`);
  console.log('    (authenticated, decrypted, not replayed) / sesame knock.accepted events; per second = accepted / (last acceptance - first send);');
  console.log('    knocks the daemon could not take in (socket or capture buffer full) are lost, not counted');
  console.log('  CPU: utime+stime of the daemon and of all its child processes, living and exited (fwknopd runs iptables per rule, sesame keeps nft -i)');
  console.log(`  users: fresh daemons with 1 and ${USERS.toLocaleString('en')} users (sesame users.json) / access.conf stanzas (fwknopd, each SOURCE ANY with its own keys,`);
  console.log(`    the matching one last); ${USERS_WARMUP} warm-up knocks, then CPU per accepted knock over a paced burst; accepted: fwknopd ${u.f1.accepted}/${u.f1.knocks} and`);
  console.log(`    ${u.fn.accepted}/${u.fn.knocks}, sesame ${u.s1.accepted}/${u.s1.knocks} and ${u.sn.accepted}/${u.sn.knocks}`);
  console.log(`  SIGKILL: a grant with a ${KILL_TIMEOUT_S} s timeout from the client's second address, kill -9 of the daemon, then ${KILL_TIMEOUT_S + 2} s later a connection attempt from that`);
  console.log('    address and a look at the firewall (iptables -S FWKNOP_INPUT / nft list map inet sesame allow4)');
}

// ---------------------------------------------------------------------------------------------------------------------------------

const why = skipReason();
if (why !== undefined) {
  console.error(`bench:compare cannot run here: ${why}`);
  process.exit(2);
}
ensureFwknop(say);
await loadSodium();
const t0 = Date.now();
const loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const step = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
  const s = Date.now();
  say(`${name}...`);
  const r = await f();
  say(`${name} done in ${((Date.now() - s) / 1000).toFixed(1)} s`);
  return r;
};
// One daemon at a time (2 cores): nothing else of ours runs while one is measured.
const fu = await step('fwknopd, UDP server mode', () => fwknopRun(true));
const fp = await step('fwknopd, pcap mode', () => fwknopRun(false));
const sd = await step('sesame, dgram capture', () => sesameRun(false));
const sp = await step('sesame, pcap capture', () => sesameRun(true));
const f1 = await step('fwknopd, 1 stanza', () => fwknopUsers(1));
const fn = await step(`fwknopd, ${USERS} stanzas`, () => fwknopUsers(USERS));
const s1 = await step('sesame, 1 user', () => sesameUsers(1));
const sn = await step(`sesame, ${USERS} users`, () => sesameUsers(USERS));
const [inproc1 = NaN, inprocN = NaN] = sesameInProcessMicros([1, USERS]);

console.log(`fwknop vs sesame (${fwknopdVersion()} backend; sesame on node ${process.version}, nftables; one daemon at a time, client in its own namespace, ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
console.log(`machine: ${cpus().length} CPUs, load average before the run ${loadBefore}, after ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} (anything else running shifts every figure)`);
printTable({ fu, fp, sd, sp }, { f1, fn, s1, sn, inproc1, inprocN });
