// Shared benchmark helpers: process CPU time and RSS from /proc, percentiles.
import { readdirSync, readFileSync } from 'node:fs';

function statFields(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  } catch {
    return [];
  }
}

/**
 * utime + stime of a process and of its live children (sesame's nft helper), plus the time of children that
 * already exited (cutime + cstime), in seconds (clock ticks of 1/100 s).
 */
export function cpuSeconds(pid: number): number {
  const own = statFields(pid);
  let ticks = Number(own[11] ?? 0) + Number(own[12] ?? 0) + Number(own[13] ?? 0) + Number(own[14] ?? 0);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (Number(f[1]) === pid) ticks += Number(f[11] ?? 0) + Number(f[12] ?? 0);
  }
  return ticks / 100;
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
