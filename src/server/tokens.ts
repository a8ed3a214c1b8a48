// The slot tokens the server accepts now (README.md, "Protocol", "Token"): for every server key in force, the token of every 30 s slot that overlaps [now - window, now + window]. The prefilter checks against them, and the kernel gate holds them. Inputs: server keys and a clock.
import { deriveToken, slotOf } from '../protocol/keys.ts';
import type { ServerKeys } from '../protocol/keys.ts';
import { WIRE } from '../protocol/layout.ts';
import { DAEMON } from '../limits.ts';

/** A token and how long it stays acceptable from `nowMs` on: until its slot's end no longer overlaps now - window. */
export interface TokenElement {
  readonly token: number;
  readonly ttlMs: number;
}

/**
 * The tokens acceptable at `nowMs`, plus (aheadMs > 0) those that become acceptable within aheadMs, each with the time it
 * stays acceptable: the kernel gate is refreshed every slot and installs one slot ahead, so it never lags the clock.
 */
export function tokensAt(servers: readonly ServerKeys[], nowMs: number, windowMs: number, aheadMs = 0): TokenElement[] {
  const first = slotOf(nowMs - windowMs);
  const last = slotOf(nowMs + windowMs + aheadMs);
  const out = new Map<number, number>();
  for (const server of servers) {
    for (let slot = first; slot <= last; slot++) {
      const ttlMs = (slot + 1) * WIRE.tokenSlotMs + windowMs - nowMs;
      const token = deriveToken(server.mac1Key, slot);
      out.set(token, Math.max(ttlMs, out.get(token) ?? 0));
    }
  }
  return [...out].map(([token, ttlMs]) => ({ token, ttlMs }));
}

/** The set the prefilter checks, recomputed only when the slot range or the keys change (a few keyed hashes per slot). */
export class TokenCheck {
  #servers: readonly ServerKeys[] | undefined;
  #first = Number.NaN;
  #last = Number.NaN;
  #tokens: ReadonlySet<number> = new Set();

  accepts(token: number, servers: readonly ServerKeys[], nowMs: number, windowMs: number): boolean {
    const first = slotOf(nowMs - windowMs);
    const last = slotOf(nowMs + windowMs);
    if (servers !== this.#servers || first !== this.#first || last !== this.#last) {
      this.#tokens = new Set(tokensAt(servers, nowMs, windowMs).map((e) => e.token));
      this.#servers = servers;
      this.#first = first;
      this.#last = last;
    }
    return this.#tokens.has(token);
  }
}

/**
 * Runs `task` just after every slot boundary (setTimeout re-armed each time, so it follows the wall clock rather than
 * drifting); returns a function that stops it. The timer does not keep the process alive.
 */
export function everySlot(task: () => void, now: () => number = Date.now): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const t = now();
    timer = setTimeout(() => {
      task();
      arm();
    }, (slotOf(t) + 1) * WIRE.tokenSlotMs - t + DAEMON.tokenRefreshAfterBoundaryMs);
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
