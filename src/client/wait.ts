// Client: after a knock, poll the protected TCP port until it accepts (re-knocking if the knock seems lost), and explain a port that did not open. Trusts its typed inputs; reads nothing from the network but connect results.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { errnoCode } from '../errors.ts';
import { DEFAULTS, WAIT } from '../limits.ts';
import { errorText } from './send.ts';
import type { Target } from './send.ts';

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
        if (errnoCode(err) === 'ECONNREFUSED') finish({ ok: false, why: 'refused', elapsedMs: elapsed(), lastError: 'ECONNREFUSED' });
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

/** Why a knock may have been refused. The server never answers a knock, so the client can only list causes. */
export function likelyCauses(c: WaitContext, now: Date): string[] {
  return [
    'Likely causes:',
    `  - clock skew: the server refuses knocks more than ±${DEFAULTS.freshnessWindowMs / 1000} s (its default window) off its own clock; this machine says ${now.toISOString().replace('T', ' ').slice(0, 19)} UTC: compare with "date -u" on the server`,
    `  - wrong server key: ${c.serverKey} is not this server's current public key`,
    `  - your key (key id ${c.keyIdHex}) is not authorized on this server, or was revoked; or its policy does not allow tcp/${c.port} from your address (behind NAT, --open YOUR-PUBLIC-ADDRESS may help)`,
    `  - a firewall between you and the server drops UDP to port ${c.knockPort}`,
    `  - wrong knock port: the server does not listen on UDP ${c.knockPort} (--knock-port, or "knockPort" in the profile)`,
  ];
}

/** The failed wait, with what to check. */
export function explainNotOpened(outcome: WaitOutcome & { ok: false }, c: WaitContext, now: Date): string {
  const where = `tcp/${c.port} on ${c.target.host} (${c.target.address})`;
  if (outcome.why === 'refused') {
    return `${where}: port reachable but nothing listening (the connection was refused with a reset, so a knock is not what is missing): check that the service runs and that ${c.port} is its port`;
  }
  return [
    `${where} did not open within ${c.timeoutSeconds} s (${c.knocks} knock${c.knocks === 1 ? '' : 's'} sent to UDP port ${c.knockPort}; the server never answers a knock).`,
    ...likelyCauses(c, now),
    ...(outcome.lastError === undefined ? [] : [`(last connect error: ${outcome.lastError})`]),
  ].join('\n');
}
