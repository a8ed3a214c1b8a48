// Flood sender for the benchmarks, run inside the client namespace: sends junk to the knock port as fast as it can for a fixed time. Prints one JSON line.
import { createSocket } from 'node:dgram';
import { randomFillSync } from 'node:crypto';

interface Args {
  host: string;
  port: number;
  from: string;
  seconds: number;
  /** random: random bytes; badmac: a v2 header and a knock's length, random token and mac1; insider: the same with a valid token (tokenHex); replay: one given packet again and again. */
  kind: 'random' | 'badmac' | 'insider' | 'replay';
  packetHex?: string;
  tokenHex?: string;
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const socket = createSocket(a.host.includes(':') ? 'udp6' : 'udp4');
await new Promise<void>((resolve) => socket.bind({ address: a.from, port: 0 }, resolve));
// A pool of distinct packets, so nothing downstream can cache one verdict.
const pool = Array.from({ length: 1024 }, () => {
  if (a.kind === 'replay') return Buffer.from(a.packetHex ?? '', 'hex');
  const knockLike = a.kind === 'badmac' || a.kind === 'insider';
  const b = randomFillSync(Buffer.alloc(knockLike ? 193 : 32 + Math.floor(Math.random() * 400)));
  if (knockLike) b.set([0x73, 0x65, 0x73, 0x02]);
  if (a.kind === 'insider') b.set(Buffer.from(a.tokenHex ?? '', 'hex'), 4);
  return b;
});
const deadline = Date.now() + a.seconds * 1000;
let sent = 0;
let inFlight = 0;
let i = 0;
await new Promise<void>((resolve) => {
  const pump = (): void => {
    while (inFlight < 256 && Date.now() < deadline) {
      inFlight++;
      socket.send(pool[i++ & 1023] ?? Buffer.alloc(1), a.port, a.host, () => {
        inFlight--;
        sent++;
        if (inFlight < 128) setImmediate(pump);
      });
    }
    if (Date.now() >= deadline && inFlight === 0) resolve();
    else if (Date.now() >= deadline) setTimeout(pump, 5);
  };
  pump();
});
socket.close();
process.stdout.write(`${JSON.stringify({ kind: a.kind, sent, seconds: a.seconds })}\n`);
