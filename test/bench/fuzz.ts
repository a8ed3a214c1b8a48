// The long fuzz run: 1,000,000 generated packets (default; FUZZ_PACKETS to change) through the full in-process pipeline. Prints figures; throws on any crash or wrong acceptance.
import { loadSodium } from '../../src/protocol/sodium.ts';
import { fuzzWorld, runFuzz } from '../helpers/fuzz.ts';

const count = Number(process.env['FUZZ_PACKETS'] ?? '1000000');
await loadSodium();
const world = fuzzWorld(200);
const t0 = performance.now();
const r = await runFuzz(world, count, Number(process.env['FUZZ_EXPENSIVE_SHARE'] ?? '0.01'));
const seconds = (performance.now() - t0) / 1000;
world.close();
if (world.accepted.length !== r.validAccepted || r.validAccepted !== 200) throw new Error(`accepted ${world.accepted.length}, expected exactly the 200 valid knocks once`);
console.log(`fuzz: ${count.toLocaleString('en')} packets through the full pipeline in ${seconds.toFixed(1)} s (${(count / seconds).toFixed(0)} /s), 0 crashes`);
console.log(`accepted: ${world.accepted.length} = the ${r.validAccepted} unmodified valid knocks, each once; heap growth ${r.heapGrowthMiB.toFixed(1)} MiB`);
console.log(`generators: ${[...r.perGenerator].map(([k, v]) => `${k} ${v}`).join('; ')}`);
console.log(`drops by reason: ${[...world.deps.drops.totals].map(([k, v]) => `${k} ${v}`).join(', ')}`);
