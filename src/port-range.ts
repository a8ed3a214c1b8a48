// The confirmation range ("62202-62217"): TCP ports a knock may name as its confirmation port, in the server config, a client profile and --confirm-ports. Parses operator text only.
import { randomInt } from 'node:crypto';
import { CONFIRM } from './limits.ts';

export interface PortRange {
  readonly first: number;
  readonly last: number;
}

export const DEFAULT_CONFIRM_PORTS: PortRange = { first: CONFIRM.defaultFirstPort, last: CONFIRM.defaultLastPort };

export const formatRange = (r: PortRange): string => `${r.first}-${r.last}`;

export const inRange = (r: PortRange, port: number): boolean => Number.isInteger(port) && port >= r.first && port <= r.last;

/**
 * "FIRST-LAST" -> PortRange, or why not. At least two ports, so the client can probe one it did not name as a control
 * (a host that resets every SYN there is not confirming anything); at most CONFIRM.maxRangePorts.
 */
export function parseRange(text: string): { ok: true; value: PortRange } | { ok: false; why: string } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (m === null || first < 1 || last > 65_535) return { ok: false, why: `expected FIRST-LAST, TCP ports 1-65535 (e.g. ${formatRange(DEFAULT_CONFIRM_PORTS)}), got ${JSON.stringify(text)}` };
  if (last <= first) return { ok: false, why: `${text}: the last port must be above the first (at least two ports)` };
  if (last - first + 1 > CONFIRM.maxRangePorts) return { ok: false, why: `${text}: at most ${CONFIRM.maxRangePorts} ports` };
  return { ok: true, value: { first, last } };
}

/** Two distinct ports of the range, uniformly at random: the one a knock names, and a control the client also probes. */
export function pickPorts(r: PortRange, random: (n: number) => number = randomInt): { confirm: number; control: number } {
  const size = r.last - r.first + 1;
  const a = random(size);
  const b = (a + 1 + random(size - 1)) % size;
  return { confirm: r.first + a, control: r.first + b };
}
