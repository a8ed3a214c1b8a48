// Client: one knock watched to its verdict (README.md, "Confirmation"): the kernel's confirmation reset, and the protected port. Trusts its typed inputs; reads nothing from the network but connect results.
import type { Socket } from 'node:net';
import { EXIT } from '../errors.ts';
import type { ExitCode } from '../errors.ts';
import { CONFIRM, WAIT } from '../limits.ts';
import { watchConfirmation } from './confirm.ts';
import type { Confirmation } from './confirm.ts';
import type { Sender, Target } from './send.ts';
import { waitForPort } from './wait.ts';
import type { WaitOutcome } from './wait.ts';

/** What the protected port did: accepted a connection, answered with a reset (nothing listens), or stayed silent until the deadline. */
export type PortState = 'open' | 'refused' | 'silent';

/**
 * confirmed: the server accepted this knock and the port is open. unconfirmed: the port is reachable (an earlier grant
 * for this address is still open) but this knock was not confirmed. refused: the host answers on the port but nothing
 * listens. confirmedClosed: the server accepted the knock but the port did not open (something else in the path drops
 * it). nothing: neither a confirmation nor an open port.
 */
export type Verdict = 'confirmed' | 'unconfirmed' | 'refused' | 'confirmedClosed' | 'nothing';

export function verdictOf(confirmation: Confirmation['kind'], port: PortState): Verdict {
  const confirmed = confirmation === 'confirmed';
  if (port === 'refused') return 'refused';
  if (port === 'open') return confirmed ? 'confirmed' : 'unconfirmed';
  return confirmed ? 'confirmedClosed' : 'nothing';
}

export const VERDICT_EXIT: Readonly<Record<Verdict, ExitCode>> = {
  confirmed: EXIT.ok,
  unconfirmed: EXIT.notConfirmed,
  refused: EXIT.notOpened,
  confirmedClosed: EXIT.notOpened,
  nothing: EXIT.notOpened,
};

/** A knock not confirmed (port reachable or not) may have been sealed to a key the server does not hold: worth the next key. A refused port or a confirmed knock would not change with it. */
export const tryNextKey = (v: Verdict): boolean => v === 'nothing' || v === 'unconfirmed';

export interface KnockOutcome {
  readonly verdict: Verdict;
  readonly confirmation: Confirmation['kind'];
  /** The connection that proved the port open (open verdicts only), still unread: ssh-proxy relays over it. */
  readonly socket: Socket | undefined;
  readonly wait: WaitOutcome;
  readonly elapsedMs: number;
}

export interface KnockPlan {
  readonly target: Target;
  readonly port: number;
  /** The confirmation port this invocation's knocks name, and the control port of the same range. */
  readonly ports: { readonly confirm: number; readonly control: number };
  readonly timeoutMs: number;
  readonly sender: Sender;
  /** A fresh knock (new nonce and time) naming ports.confirm. */
  readonly build: () => Promise<Uint8Array>;
}

/**
 * Sends the knock, then watches both ports: re-knocks (fresh packets) only while nothing is confirmed; once the port is
 * reachable it waits at most CONFIRM.afterReachableMs more for this knock's confirmation (an earlier grant makes the port
 * reachable at once, and a refused knock is never confirmed).
 */
export async function knockOnce(p: KnockPlan): Promise<KnockOutcome> {
  const started = performance.now();
  const watch = watchConfirmation(p.target, p.ports);
  let confirmation: Confirmation = { kind: 'none' };
  const confirmed = watch.result.then((c) => {
    confirmation = c;
  });
  try {
    await p.sender.send(await p.build());
    const wait = await waitForPort(p.target, p.port, p.timeoutMs, async () => {
      if (confirmation.kind !== 'confirmed') await p.sender.send(await p.build());
    });
    if (wait.ok && confirmation.kind === 'none') {
      watch.hurry();
      const left = Math.max(0, Math.min(CONFIRM.afterReachableMs, p.timeoutMs - (performance.now() - started)));
      let timer: NodeJS.Timeout | undefined;
      const reknock = setInterval(() => void p.build().then((packet) => p.sender.send(packet)).catch(() => undefined), WAIT.reknockEveryMs);
      await Promise.race([confirmed, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
      clearInterval(reknock);
    }
    watch.stop();
    await confirmed;
    const port: PortState = wait.ok ? 'open' : wait.why === 'refused' ? 'refused' : 'silent';
    const verdict = verdictOf(confirmation.kind, port);
    const socket = wait.ok && (verdict === 'confirmed' || verdict === 'unconfirmed') ? wait.socket : undefined;
    if (wait.ok && socket === undefined) wait.socket.destroy();
    return { verdict, confirmation: confirmation.kind, socket, wait, elapsedMs: Math.round(performance.now() - started) };
  } finally {
    watch.stop();
  }
}
