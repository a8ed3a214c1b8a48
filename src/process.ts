// Process identity and exclusive locks: a process is named by pid and start time (so a reused pid is never mistaken for it); file locks are kernel flocks that die with their holder. Trusts nothing read from /proc or a lock file.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { errnoCode, errorMessage, EXIT, OperatorError } from './errors.ts';
import { LOCK } from './limits.ts';

export interface ProcessId {
  readonly pid: number;
  /** Clock ticks after boot at which the process started (/proc/PID/stat field 22). */
  readonly startTicks: number;
}

/** The start time of a running process, or undefined if there is no such process. */
export function startTicksOf(pid: number): number | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[19]);
  return Number.isSafeInteger(ticks) ? ticks : undefined;
}

export function self(): ProcessId {
  return { pid: process.pid, startTicks: startTicksOf(process.pid) ?? 0 };
}

/** Whether the process named by id still runs (the same process, not a later one with its pid). */
export function isRunning(id: ProcessId): boolean {
  return startTicksOf(id.pid) === id.startTicks;
}

/** The command line of a running process, for messages ("node /usr/bin/sesame server -c ..."). */
export function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '').join(' ').slice(0, 300);
  } catch {
    return '?';
  }
}

function readHolder(lockPath: string): number | undefined {
  try {
    const m = /^(\d{1,10})\n?$/.exec(readFileSync(lockPath, 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** flock(1)'s exit code when the lock stayed taken for the whole wait. */
const CONFLICT_EXIT = 75;

/**
 * Runs `fn` holding an exclusive flock(2) on `path.lock`. The lock is held by a `flock … cat` child whose stdin is ours:
 * it is released when we close that pipe, and by the kernel if this process dies, so no stale lock survives a crash.
 * A lock held elsewhere is waited for up to LOCK.waitSeconds, then refused naming the holder. `what` names the file.
 */
export async function withLock<T>(path: string, what: string, fn: () => T | Promise<T>): Promise<T> {
  const lockPath = `${path}.lock`;
  const child = spawn('flock', ['--exclusive', '--no-fork', '--timeout', String(LOCK.waitSeconds), '--conflict-exit-code', String(CONFLICT_EXIT), lockPath, 'cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<string>((resolve) => {
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err) => resolve(errnoCode(err) === 'ENOENT' ? 'flock (util-linux) is not installed' : errorMessage(err)));
    child.on('exit', (code) => resolve(code === CONFLICT_EXIT ? 'conflict' : `flock exited (${code ?? 'signal'}): ${stderr.trim()}`));
  });
  child.stdin.on('error', () => {});
  // cat echoes this line only once flock holds the lock.
  const locked = new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdin.write('locked\n');
  const first = await Promise.race([locked.then(() => undefined), exited]);
  if (first === 'conflict') {
    const holder = readHolder(lockPath);
    const who = holder === undefined || startTicksOf(holder) === undefined ? 'another process' : `pid ${holder} (${commandLineOf(holder)})`;
    throw new OperatorError(`${what} ${path} is being edited by ${who}; waited ${LOCK.waitSeconds} s, nothing was changed: try again`, EXIT.config);
  }
  if (first !== undefined) throw new OperatorError(`cannot lock ${what} ${path}: ${first}`, EXIT.config);
  try {
    writeFileSync(lockPath, `${process.pid}\n`);
    return await fn();
  } finally {
    child.stdin.end();
    await exited;
  }
}
