// Shared benchmark helpers: CPU time and RSS of a daemon and everything it runs (fwknopd forks iptables per rule; sesame keeps an `nft -i`), from /proc; percentiles.
import { readdirSync, readFileSync } from 'node:fs';

interface Proc { ppid: number; self: number; reaped: number }

function procTable(): Map<number, Proc> {
  const table = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      table.set(Number(name), { ppid: Number(f[1]), self: (Number(f[11]) + Number(f[12])) / 100, reaped: (Number(f[13]) + Number(f[14])) / 100 });
    } catch {
      // exited while we looked
    }
  }
  return table;
}

function tree(pid: number, table = procTable()): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, e] of table) if (e.ppid === out[i]) out.push(p);
  return out.filter((p) => table.has(p));
}

/** CPU seconds of pid and all its descendants, living and exited (reaped children's time is in their parent's cutime/cstime). */
export function treeCpu(pid: number): { total: number; children: number } {
  const table = procTable();
  const root = table.get(pid);
  if (root === undefined) throw new Error(`process ${pid} is gone`);
  let total = 0;
  for (const p of tree(pid, table)) total += (table.get(p)?.self ?? 0) + (table.get(p)?.reaped ?? 0);
  return { total, children: total - root.self };
}

export function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** RSS of the daemon and of its resident helper processes (sesame's nft -i), MiB. */
export function treeRss(pid: number): { total: number; main: number } {
  const main = rssMiB(pid);
  return { total: tree(pid).reduce((n, p) => n + rssMiB(p), 0), main };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
