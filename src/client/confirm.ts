// Client: watch a knock's confirmation port (and a control port of the same range) for the kernel's reset that says the server accepted this knock (README.md, "Confirmation"). Trusts its typed inputs; reads nothing from the network but connect results.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { errnoCode } from '../errors.ts';
import { CONFIRM, WAIT } from '../limits.ts';
import type { Target } from './send.ts';

/**
 * confirmed: the confirmation port answered a SYN with a reset, and the control port did not;
 * answersAll: the control port answered too, so the host resets every SYN there and a reset proves nothing
 * (its confirmPorts are not ours, or it is no sesame); none: no reset (yet, or at all).
 */
export type Confirmation = { readonly kind: 'confirmed'; readonly elapsedMs: number } | { readonly kind: 'answersAll' } | { readonly kind: 'none' };

export interface ConfirmationWatch {
  /** Settles with confirmed or answersAll as soon as known, or with none when stopped. */
  readonly result: Promise<Confirmation>;
  /** Probes again on the dense first schedule: the protected port just opened, so the confirmation is due within an nft round trip. */
  hurry(): void;
  stop(): void;
}

/** One connect attempt: 'reset' (refused), or 'silent' (timed out, or any other failure), or 'connected' (a listener: no confirmation). */
function probe(target: Target, port: number, pending: Set<Socket>): Promise<{ answer: 'reset' | 'silent' | 'connected'; rttMs: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const s = connect({ host: target.address, port, family: target.family });
    pending.add(s);
    const end = (answer: 'reset' | 'silent' | 'connected'): void => {
      pending.delete(s);
      s.destroy();
      resolve({ answer, rttMs: performance.now() - started });
    };
    s.setTimeout(WAIT.attemptTimeoutMs, () => end('silent'));
    s.once('connect', () => end('connected'));
    s.once('error', (err) => end(errnoCode(err) === 'ECONNREFUSED' ? 'reset' : 'silent'));
  });
}

/**
 * Probes the confirmation port on the same schedule as the protected port (WAIT.firstAttemptsMs, then every
 * WAIT.pollMs): attempts that reach the kernel before the confirmation do not get an answer, and the first that reaches
 * it after gets the reset (and uses it up). The control port is probed once with the first attempt: a host that resets
 * every SYN to it answers it no later than the confirmation port, so after a reset there the control gets a short grace
 * (CONFIRM.controlGraceMinMs) to answer before the reset counts as a confirmation.
 */
export function watchConfirmation(target: Target, ports: { readonly confirm: number; readonly control: number }): ConfirmationWatch {
  const started = performance.now();
  const pending = new Set<Socket>();
  const timers: NodeJS.Timeout[] = [];
  let settle: (c: Confirmation) => void = () => {};
  let done = false;
  const result = new Promise<Confirmation>((resolve) => {
    settle = resolve;
  });
  const finish = (c: Confirmation): void => {
    if (done) return;
    done = true;
    for (const t of timers) clearTimeout(t);
    for (const s of pending) s.destroy();
    pending.clear();
    settle(c);
  };
  let controlAnswer: 'reset' | undefined;
  const control = probe(target, ports.control, pending).then((r) => {
    if (r.answer === 'reset') controlAnswer = 'reset';
    return r.answer;
  });
  const attempt = (): void => {
    void probe(target, ports.confirm, pending).then(async ({ answer, rttMs }) => {
      if (answer !== 'reset' || done) return;
      const elapsedMs = Math.round(performance.now() - started);
      if (controlAnswer === undefined) {
        const grace = new Promise((resolve) => timers.push(setTimeout(resolve, Math.max(CONFIRM.controlGraceMinMs, Math.ceil(rttMs / 4)))));
        await Promise.race([control, grace]);
      }
      finish(controlAnswer === 'reset' ? { kind: 'answersAll' } : { kind: 'confirmed', elapsedMs });
    });
  };
  const dense = (): void => {
    if (!done) for (const at of WAIT.firstAttemptsMs) timers.push(setTimeout(attempt, at));
  };
  dense();
  timers.push(setTimeout(() => timers.push(setInterval(attempt, WAIT.pollMs)), (WAIT.firstAttemptsMs.at(-1) ?? 0) + WAIT.pollMs));
  return { result, hurry: dense, stop: () => finish({ kind: 'none' }) };
}
