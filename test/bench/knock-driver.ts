// Benchmark client, run inside the client namespace: measures knock-to-open latency, or sends a burst of distinct valid knocks. Prints one JSON line.
import { createSocket } from 'node:dgram';
import { knockToOpenMs, sendInBursts } from './probe.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { readServerPublicKey, readUserSecretKey } from '../../src/protocol/keyfile.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';

interface Args {
  mode: 'latency' | 'flood' | 'paced';
  host: string;
  knockPort: number;
  identity: string;
  serverPub: string;
  ports: number[];
  count?: number;
  perBurst?: number;
  burstGapMs?: number;
  /** paced: one fresh knock every intervalMs, from this local address. */
  intervalMs?: number;
  from?: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
await loadSodium();
const user = readUserSecretKey(args.identity);
const server = readServerPublicKey(args.serverPub).key;
const socket = createSocket(args.host.includes(':') ? 'udp6' : 'udp4');
if (args.from !== undefined) await new Promise<void>((resolve) => socket.bind({ address: args.from, port: 0 }, resolve));
const send = (packet: Uint8Array): Promise<void> => new Promise((resolve, reject) => socket.send(packet, args.knockPort, args.host, (e) => (e ? reject(e) : resolve())));

if (args.mode === 'latency') {
  const latenciesMs: number[] = [];
  for (const port of args.ports) {
    const packet = buildKnock({ access: [{ proto: 'tcp', port }] }, user, server, Date.now(), systemRandom);
    latenciesMs.push(await knockToOpenMs(() => send(packet), args.host, port));
  }
  process.stdout.write(`${JSON.stringify({ latenciesMs })}\n`);
} else if (args.mode === 'paced') {
  // Legitimate knocks under a flood: each one built and timestamped right before it is sent.
  const sentAt: number[] = [];
  for (let i = 0; i < (args.count ?? 30); i++) {
    const packet = buildKnock({ access: [{ proto: 'tcp', port: args.ports[0] ?? 22 }] }, user, server, Date.now(), systemRandom);
    sentAt.push(Date.now());
    await send(packet);
    await new Promise((r) => setTimeout(r, args.intervalMs ?? 250));
  }
  process.stdout.write(`${JSON.stringify({ sentAt })}\n`);
} else {
  const count = args.count ?? 3000;
  const port = args.ports[0] ?? 22;
  // Built before the clock starts: building costs the client more than checking costs the server.
  const packets = Array.from({ length: count }, () => buildKnock({ access: [{ proto: 'tcp', port }] }, user, server, Date.now(), systemRandom));
  const t0 = await sendInBursts(packets, send, args.perBurst ?? 100, args.burstGapMs ?? 10);
  process.stdout.write(`${JSON.stringify({ sent: count, startedMs: t0, elapsedMs: Date.now() - t0 })}\n`);
}
socket.close();
