// Client side of the fwknop/sesame comparison, run inside the client namespace. Sends pre-built packets (from either daemon's client; hex,
// one per line in a file) so both daemons see exactly the same probe: latency mode sends one knock, then tries the port with 2 ms connect
// attempts until it accepts (as knock-driver.ts); during mode does so at a pace for a fixed time (under a flood); flood mode sends every packet in bursts. Prints one JSON line.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { knockToOpenMs, sendInBursts } from './probe.ts';

interface Args {
  /** during: like latency, one knock every intervalMs (or after the last one opened or gave up) until durationMs is over. */
  mode: 'latency' | 'flood' | 'during';
  host: string;
  knockPort: number;
  packetsFile: string;
  /** latency: the port each packet opens, in order. */
  ports?: number[];
  perBurst?: number;
  burstGapMs?: number;
  durationMs?: number;
  intervalMs?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const packets = readFileSync(args.packetsFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => Buffer.from(l, 'hex'));
const socket = createSocket(args.host.includes(':') ? 'udp6' : 'udp4');
const send = (packet: Uint8Array): Promise<void> => new Promise((resolve, reject) => socket.send(packet, args.knockPort, args.host, (e) => (e ? reject(e) : resolve())));

if (args.mode === 'latency') {
  const ports = args.ports ?? [];
  if (ports.length !== packets.length) throw new Error(`${packets.length} packets for ${ports.length} ports`);
  const latenciesMs: number[] = [];
  for (const [i, packet] of packets.entries()) latenciesMs.push(await knockToOpenMs(() => send(packet), args.host, ports[i] ?? 0));
  process.stdout.write(`${JSON.stringify({ latenciesMs })}\n`);
} else if (args.mode === 'during') {
  // Knocks while a flood runs: each probed until open (Infinity = not served within 3 s).
  const ports = args.ports ?? [];
  const latenciesMs: number[] = [];
  const deadline = Date.now() + (args.durationMs ?? 8000);
  for (const [i, packet] of packets.entries()) {
    if (Date.now() >= deadline) break;
    const next = Date.now() + (args.intervalMs ?? 300);
    latenciesMs.push(await knockToOpenMs(() => send(packet), args.host, ports[i] ?? 0));
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  process.stdout.write(`${JSON.stringify({ latenciesMs })}\n`);
} else {
  const t0 = await sendInBursts(packets, send, args.perBurst ?? 100, args.burstGapMs ?? 10);
  process.stdout.write(`${JSON.stringify({ sent: packets.length, startedMs: t0, elapsedMs: Date.now() - t0 })}\n`);
}
socket.close();
