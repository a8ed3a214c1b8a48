// Benchmark helper: one process in a namespace holding TCP listeners on many ports (one process per port would cost ~40 MiB each); the namespace's removal kills it. Trusts the bench code that calls it.
import { spawnIn } from '../../src/harness/netns.ts';

const LISTEN = `
const net = require('node:net');
const ports = process.argv.slice(1).map(Number);
let n = 0;
for (const port of ports) net.createServer((c) => { c.on('error', () => {}); c.end(); }).listen({ host: '0.0.0.0', port }, () => { if (++n === ports.length) console.log('listening'); });`;

export async function startListeners(ns: string, ports: readonly number[]): Promise<void> {
  const child = spawnIn(ns, [process.execPath, '-e', LISTEN, ...ports.map(String)]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('listening')) resolve(); });
    child.once('exit', (code) => reject(new Error(`listener exited (${code})`)));
  });
}
