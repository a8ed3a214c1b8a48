// Writes test/vectors/knocks.json from vectors.ts. Run with `npm run vectors`; commit the result.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { generateVectors } from './vectors.ts';

await loadSodium();
// dist/test/vectors/generate.js -> <repo>/test/vectors/knocks.json
const out = fileURLToPath(new URL('../../../test/vectors/knocks.json', import.meta.url));
const file = generateVectors();
writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
process.stdout.write(`wrote ${file.vectors.length} vectors to ${out}\n`);
