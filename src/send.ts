// Client network steps: resolve the server, send knocks over UDP, poll the protected TCP port until it accepts, relay bytes. Trusts its typed inputs; parses nothing from the network.
import { lookup } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { EXIT, OperatorError } from './errors.ts';
import { DEFAULTS, WAIT } from './limits.ts';

export interface Target {
  /** As the user gave it, for messages. */
  readonly host: string;
  readonly address: string;
  readonly family: 4 | 6;
}

const errorCode = (err: unknown): string => (err instanceof Error && 'code' in err ? String(err.code) : '');
const errorText = (err: unknown): string => errorCode(err) || (err instanceof Error ? err.message : String(err));

/** One address for both the knock and the TCP connect: the server opens for the knock's source address. */
export async function resolveHost(host: string, family: 4 | 6 | undefined): Promise<Target> {
  let found: { address: string; family: number };
  try {
    found = await lookup(host, { family: family ?? 0 });
  } catch (err) {
    const v = family === undefined ? '' : ` to an IPv${family} address`;
    throw new OperatorError(`cannot resolve host "${host}"${v} (${errorText(err)}): check the name (or the profile's "host"), or give an IP address`, EXIT.host);
  }
  if (found.family !== 4 && found.family !== 6) throw new OperatorError(`host "${host}" resolved to an unsupported address ${found.address}`, EXIT.host);
  if (family !== undefined && found.family !== family) throw new OperatorError(`${host} is an IPv${found.family} address, but -${family} (or the profile's "family") asks for IPv${family}`, EXIT.usage);
  return { host, address: found.address, family: found.family };
}

export interface Sender {
  send(packet: Uint8Array): Promise<void>;
  readonly sent: number;
  close(): void;
}

/** One UDP socket for the first knock and any re-knocks. Send errors (no route, ...) are network errors. */
export function openSender(target: Target, knockPort: number): Sender {
  const socket = createSocket(target.family === 6 ? 'udp6' : 'udp4');
  let sent = 0;
  let failure: unknown;
  socket.on('error', (err) => {
    failure = err;
  });
  const fail = (err: unknown): OperatorError =>
    new OperatorError(
      `could not send the knock to ${target.host} (${target.address}) UDP port ${knockPort}: ${errorText(err)}` +
        (target.host === target.address ? '' : `; if ${target.host} has both IPv4 and IPv6 addresses, -4 or -6 picks the family that works from here`),
      EXIT.network,
    );
  return {
    get sent() {
      return sent;
    },
    send: (packet) =>
      new Promise((resolve, reject) => {
        if (failure !== undefined) return reject(fail(failure));
        socket.send(packet, knockPort, target.address, (err) => {
          if (err) return reject(fail(err));
          sent++;
          resolve();
        });
      }),
    close: () => socket.close(),
  };
}

export type WaitOutcome =
  | { readonly ok: true; readonly socket: Socket; readonly elapsedMs: number }
  | { readonly ok: false; readonly why: 'timeout' | 'refused'; readonly elapsedMs: number; readonly lastError: string | undefined };

/**
 * Polls target:port with overlapping short connect attempts until one connects, a reset says nothing
 * listens, or timeoutMs passes; calls reknock (which must send a FRESH knock) when the first seems lost.
 * On success the connected socket is handed over, so ssh-proxy relays on the very connection that proved the port open.
 */
export function waitForPort(target: Target, port: number, timeoutMs: number, reknock: () => Promise<void>): Promise<WaitOutcome> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const pending = new Set<Socket>();
  const timers: NodeJS.Timeout[] = [];
  let lastError: string | undefined;
  let done = false;
  return new Promise((resolve) => {
    const finish = (outcome: WaitOutcome): void => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      for (const s of pending) s.destroy();
      pending.clear();
      resolve(outcome);
    };
    const attempt = (): void => {
      const s = connect({ host: target.address, port, family: target.family });
      pending.add(s);
      s.setTimeout(WAIT.attemptTimeoutMs, () => {
        pending.delete(s);
        s.destroy();
      });
      s.once('connect', () => {
        pending.delete(s);
        s.setTimeout(0);
        s.removeAllListeners('timeout');
        s.removeAllListeners('error');
        if (done) s.destroy();
        else finish({ ok: true, socket: s, elapsedMs: elapsed() });
      });
      s.once('error', (err) => {
        pending.delete(s);
        // A reset comes from the host itself (or a rejecting firewall): waiting longer will not help.
        if (errorCode(err) === 'ECONNREFUSED') finish({ ok: false, why: 'refused', elapsedMs: elapsed(), lastError: 'ECONNREFUSED' });
        else lastError = errorText(err);
      });
    };
    const again = (): void => {
      reknock().catch((err: unknown) => {
        lastError = errorText(err);
      });
    };
    for (const at of WAIT.firstAttemptsMs) timers.push(setTimeout(attempt, at));
    timers.push(setTimeout(() => timers.push(setInterval(attempt, WAIT.pollMs)), (WAIT.firstAttemptsMs.at(-1) ?? 0) + WAIT.pollMs));
    timers.push(
      setTimeout(() => {
        again();
        timers.push(setInterval(again, WAIT.reknockEveryMs));
      }, WAIT.firstReknockMs),
    );
    timers.push(setTimeout(() => finish({ ok: false, why: 'timeout', elapsedMs: elapsed(), lastError }), timeoutMs));
  });
}

export interface WaitContext {
  readonly target: Target;
  readonly port: number;
  readonly knockPort: number;
  readonly knocks: number;
  readonly timeoutSeconds: number;
  /** Where the server key came from: a path, or "FILE: profiles.NAME.serverKey". */
  readonly serverKey: string;
  readonly keyIdHex: string;
}

/** The failed wait, with what to check. The server never answers a knock, so the client can only list causes. */
export function explainNotOpened(outcome: WaitOutcome & { ok: false }, c: WaitContext, now: Date): string {
  const where = `tcp/${c.port} on ${c.target.host} (${c.target.address})`;
  if (outcome.why === 'refused') {
    return `${where}: port reachable but nothing listening (the connection was refused with a reset, so a knock is not what is missing): check that the service runs and that ${c.port} is its port`;
  }
  return [
    `${where} did not open within ${c.timeoutSeconds} s (${c.knocks} knock${c.knocks === 1 ? '' : 's'} sent to UDP port ${c.knockPort}; the server never answers a knock).`,
    'Likely causes:',
    `  - clock skew: the server refuses knocks more than ±${DEFAULTS.freshnessWindowMs / 1000} s (its default window) off its own clock; this machine says ${now.toISOString().replace('T', ' ').slice(0, 19)} UTC: compare with "date -u" on the server`,
    `  - wrong server key: ${c.serverKey} is not this server's current public key`,
    `  - your key (key id ${c.keyIdHex}) is not authorized on this server, or was revoked; or its policy does not allow tcp/${c.port} from your address (behind NAT, --open YOUR-PUBLIC-ADDRESS may help)`,
    `  - a firewall between you and the server drops UDP to port ${c.knockPort}`,
    `  - wrong knock port: the server does not listen on UDP ${c.knockPort} (--knock-port, or "knockPort" in the profile)`,
    ...(outcome.lastError === undefined ? [] : [`(last connect error: ${outcome.lastError})`]),
  ].join('\n');
}

/**
 * Binary-safe relay between a byte stream pair (stdin/stdout for ssh's ProxyCommand) and the socket.
 * input's end half-closes the socket's write side; the socket's close ends the relay. Resolves to an exit code.
 */
export function relay(socket: Socket, input: Readable, output: Writable, log: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    let failure: string | undefined;
    socket.setNoDelay(true);
    socket.on('error', (err) => {
      failure ??= `connection to ${socket.remoteAddress ?? '?'} port ${socket.remotePort ?? '?'} failed: ${errorText(err)}`;
    });
    output.on('error', (err) => {
      // The reader (ssh) went away: nothing left to relay to.
      failure ??= `cannot write to stdout: ${errorText(err)}`;
      socket.destroy();
    });
    input.on('error', (err) => {
      failure ??= `cannot read stdin: ${errorText(err)}`;
      socket.destroy();
    });
    socket.on('close', () => {
      input.unpipe(socket);
      // stdin keeps the event loop alive; the relay is over once the server side is gone.
      input.destroy();
      if (failure !== undefined) log(failure);
      resolve(failure === undefined ? EXIT.ok : EXIT.network);
    });
    socket.pipe(output, { end: false });
    input.pipe(socket);
  });
}
