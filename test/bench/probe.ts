// The benchmark drivers' shared client side: time from sending a knock until its port accepts, and sending packets in bursts. Identical for every daemon compared.
import { connect } from 'node:net';

/** One connect attempt with a short timeout: a SYN to a closed (dropped) port is abandoned and retried, not left to TCP's 1 s retransmit. */
function tryConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.on('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Sends a knock, then tries host:port every 2 ms until it accepts; milliseconds from send to connect (Infinity after 3 s). */
export async function knockToOpenMs(send: () => Promise<void>, host: string, port: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  await send();
  let ok = false;
  while (!ok && Number(process.hrtime.bigint() - t0) < 3e9) ok = await tryConnect(host, port, 2);
  return ok ? Number(process.hrtime.bigint() - t0) / 1e6 : Infinity;
}

/** Sends packets perBurst at a time with gapMs between bursts; returns when the send began. */
export async function sendInBursts(packets: readonly Uint8Array[], send: (p: Uint8Array) => Promise<void>, perBurst: number, gapMs: number): Promise<number> {
  const t0 = Date.now();
  for (let i = 0; i < packets.length; i += perBurst) {
    await Promise.all(packets.slice(i, i + perBurst).map(send));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return t0;
}
