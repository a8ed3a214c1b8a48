// Client side of the fwknop/sesame comparison, run inside the client namespace. Sends pre-built packets (from either daemon's client; hex,
// one per line in a file) so both daemons see exactly the same probe: latency mode sends one knock, then tries the port with 2 ms connect
// attempts until it accepts (as knock-driver.ts); flood mode sends every packet in bursts. Prints one JSON line.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

interface Args {
  mode: 'latency' | 'flood';
  host: string;
  knockPort: number;
  packetsFile: string;
  /** latency: the port each packet opens, in order. */
  ports?: number[];
  perBurst?: number;
  burstGapMs?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const packets = readFileSync(args.packetsFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => Buffer.from(l, 'hex'));
const socket = createSocket(args.host.includes(':') ? 'udp6' : 'udp4');
const send = (packet: Uint8Array): Promise<void> => new Promise((resolve, reject) => socket.send(packet, args.knockPort, args.host, (e) => (e ? reject(e) : resolve())));

/** One connect attempt with a short timeout: a SYN to a closed (dropped) port is abandoned and retried, not left to TCP's 1 s retransmit. */
function tryConnect(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: args.host, port });
    const timer = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
    s.on('connect', () => { clearTimeout(timer); s.destroy(); resolve(true); });
    s.on('error', () => { clearTimeout(timer); resolve(false); });
  });
}

if (args.mode === 'latency') {
  const ports = args.ports ?? [];
  if (ports.length !== packets.length) throw new Error(`${packets.length} packets for ${ports.length} ports`);
  const latenciesMs: number[] = [];
  for (const [i, packet] of packets.entries()) {
    const port = ports[i] ?? 0;
    const t0 = process.hrtime.bigint();
    await send(packet);
    let ok = false;
    while (!ok && Number(process.hrtime.bigint() - t0) < 3e9) ok = await tryConnect(port, 2);
    latenciesMs.push(ok ? Number(process.hrtime.bigint() - t0) / 1e6 : Infinity);
  }
  process.stdout.write(`${JSON.stringify({ latenciesMs })}\n`);
} else {
  const perBurst = args.perBurst ?? 100;
  const t0 = Date.now();
  for (let i = 0; i < packets.length; i += perBurst) {
    await Promise.all(packets.slice(i, i + perBurst).map(send));
    await new Promise((r) => setTimeout(r, args.burstGapMs ?? 10));
  }
  process.stdout.write(`${JSON.stringify({ sent: packets.length, startedMs: t0, elapsedMs: Date.now() - t0 })}\n`);
}
socket.close();
