// Benchmark client, run inside the client namespace: measures knock-to-open latency, or sends a burst of distinct valid knocks. Prints one JSON line.
import { createSocket } from 'node:dgram';
import { knockToOpenMs, sendInBursts } from './probe.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { readServerPublicKey, readUserSecretKey } from '../../src/protocol/keyfile.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';

interface Args {
  mode: 'latency' | 'flood';
  host: string;
  knockPort: number;
  identity: string;
  serverPub: string;
  ports: number[];
  count?: number;
  perBurst?: number;
  burstGapMs?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
await loadSodium();
const user = readUserSecretKey(args.identity);
const server = readServerPublicKey(args.serverPub).key;
const socket = createSocket(args.host.includes(':') ? 'udp6' : 'udp4');
const send = (packet: Uint8Array): Promise<void> => new Promise((resolve, reject) => socket.send(packet, args.knockPort, args.host, (e) => (e ? reject(e) : resolve())));

if (args.mode === 'latency') {
  const latenciesMs: number[] = [];
  for (const port of args.ports) {
    const packet = buildKnock({ access: [{ proto: 'tcp', port }] }, user, server, Date.now(), systemRandom);
    latenciesMs.push(await knockToOpenMs(() => send(packet), args.host, port));
  }
  process.stdout.write(`${JSON.stringify({ latenciesMs })}\n`);
} else {
  const count = args.count ?? 3000;
  const port = args.ports[0] ?? 22;
  // Built before the clock starts: building costs the client more than checking costs the server.
  const packets = Array.from({ length: count }, () => buildKnock({ access: [{ proto: 'tcp', port }] }, user, server, Date.now(), systemRandom));
  const t0 = await sendInBursts(packets, send, args.perBurst ?? 100, args.burstGapMs ?? 10);
  process.stdout.write(`${JSON.stringify({ sent: count, startedMs: t0, elapsedMs: Date.now() - t0 })}\n`);
}
socket.close();
