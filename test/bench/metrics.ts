// Metrics benchmark: what counting costs the packet path, what rendering a page costs, and what reading N grants for a scrape does to the daemon's event loop, parsed on the loop itself versus on the worker thread the daemon uses (grant-count.ts). A stand-in nft prints N grants. Prints figures; asserts nothing.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { countGrants } from '../../src/server/grant-count.ts';
import { readTable } from '../../src/server/nft-read.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { render } from '../../src/server/prometheus.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import type { AnyDrop } from '../../src/server/log.ts';

function timeEach(label: string, runs: number, fn: () => void): void {
  for (let i = 0; i < Math.min(runs, 100); i++) fn(); // warm up the JIT
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) fn();
  const ns = Number(process.hrtime.bigint() - start) / runs;
  console.log(`${label.padEnd(62)} ${ns >= 1e6 ? `${(ns / 1e6).toFixed(1)} ms` : `${ns.toFixed(0)} ns`}`);
}

/** `nft -j list table inet sesame` as nft 1.0.6 prints it, with n grants in allow4. */
function nftJson(n: number): string {
  const elem = Array.from({ length: n }, (_, i) => [
    { elem: { val: { concat: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'tcp', 22] }, timeout: 300, expires: 299, comment: i.toString(16).padStart(32, '0') } },
    0x80000000 + i,
  ]);
  return JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }, { table: { family: 'inet', name: 'sesame', handle: 1 } }, { map: { family: 'inet', name: 'allow4', table: 'sesame', type: ['ipv4_addr', 'inet_proto', 'inet_service'], handle: 2, map: 'mark', flags: ['timeout'], elem } }] });
}

/** The longest the event loop was held while fn ran, sampled every millisecond. */
async function loopHeldMs(fn: () => Promise<unknown>): Promise<{ maxMs: number; wallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const start = performance.now();
  await fn();
  await new Promise((r) => setTimeout(r, 5));
  h.disable();
  return { maxMs: h.max / 1e6, wallMs: performance.now() - start };
}

console.log(`sesame metrics benchmark, node ${process.version}`);
const m = new Metrics();
timeEach('count an accepted knock and its latency (Metrics.granted)', 1_000_000, () => m.granted(4.2));
const drops = new Map<AnyDrop, number>(Object.values(DROP).map((r, i) => [r, i * 1000]));
const usersSource = { state: 'file', lastSyncMs: Date.now(), version: 3 } as const;
timeEach('render the whole /metrics page', 10_000, () => render(m.families({ drops, grantsOpen: 12, usersSource })));

const dir = mkdtempSync(join(tmpdir(), 'sesame-bench-metrics-'));
try {
  for (const n of [100, 10_000, 100_000]) {
    const json = nftJson(n);
    writeFileSync(join(dir, `table-${n}.json`), json);
    const nft = join(dir, `nft-${n}`);
    writeFileSync(nft, `#!${process.execPath}\nrequire('node:fs').createReadStream(${JSON.stringify(join(dir, `table-${n}.json`))}).pipe(process.stdout);\n`);
    chmodSync(nft, 0o755);
    const before = performance.now();
    readTable(json); // synchronous: the loop is held for all of it
    const inlineMs = performance.now() - before;
    const idle = await loopHeldMs(() => new Promise((r) => setTimeout(r, 300)));
    const worker = await loopHeldMs(() => countGrants('sesame', nft));
    console.log(`${n} grants (${(json.length / 1e6).toFixed(1)} MB of nft JSON): loop held ${inlineMs.toFixed(1)} ms if parsed on it; with the worker, longest loop delay ${worker.maxMs.toFixed(1)} ms (idle: ${idle.maxMs.toFixed(1)} ms), ${worker.wallMs.toFixed(0)} ms to the count`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
