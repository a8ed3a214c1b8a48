// Operator files: reading with clear errors (missing, unreadable, not JSON), naming places in them, and the one atomic writer (temp file, fsync, link or rename, directory fsync). Trusts nothing it reads.
import { closeSync, constants, fchownSync, fstatSync, fsyncSync, linkSync, openSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errnoCode, errorMessage, OperatorError } from './errors.ts';
import type { ExitCode } from './errors.ts';

/** Reads a text file; a missing or unreadable one is an operator error naming `what` and the path. */
export function readText(path: string, what: string, exitCode: ExitCode): string {
  const text = readOptionalText(path, what, exitCode);
  if (text === undefined) throw new OperatorError(`${what} ${path} does not exist`, exitCode);
  return text;
}

/** Like readText, but a missing file is `undefined` (an optional file such as the client config). */
export function readOptionalText(path: string, what: string, exitCode: ExitCode): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return undefined;
    if (code === 'EACCES') throw new OperatorError(`${what} ${path} is not readable by this user (EACCES)`, exitCode);
    throw new OperatorError(`cannot read ${what} ${path}: ${errorMessage(err)}`, exitCode);
  }
}

/** Parses JSON text read from `path`; a syntax error names the file and the position. */
export function parseJson(text: string, path: string, exitCode: ExitCode): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new OperatorError(`${path} is not valid JSON: ${errorMessage(err)}`, exitCode);
  }
}

export function readJson(path: string, what: string, exitCode: ExitCode): unknown {
  return parseJson(readText(path, what, exitCode), path, exitCode);
}

export function fileExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a file without following a symbolic link at its last component, and returns its mode as fstat saw it on the
 * very descriptor that was read: nothing can swap the file between the check and the read.
 */
export function readNoFollow(path: string, what: string, exitCode: ExitCode): { readonly text: string; readonly mode: number } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw new OperatorError(`${what} ${path} does not exist`, exitCode);
    if (code === 'ELOOP') throw new OperatorError(`${what} ${path} is a symbolic link; refusing to follow it (point to the file itself)`, exitCode);
    if (code === 'EACCES') throw new OperatorError(`${what} ${path} is not readable by this user (EACCES)`, exitCode);
    throw new OperatorError(`cannot read ${what} ${path}: ${errorMessage(err)}`, exitCode);
  }
  try {
    const mode = fstatSync(fd).mode;
    return { text: readFileSync(fd, 'utf8'), mode };
  } finally {
    closeSync(fd);
  }
}

/**
 * Like sshd's check of its files: the file and every directory above it must be owned by root or by `uid` (the daemon's
 * user) and not writable by group or others. A sticky world-writable directory (/tmp) passes, since others cannot
 * replace what they do not own in it. Returns the problems, one line each; none means the file can be trusted.
 */
export function trustProblems(path: string, uid: number): string[] {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    return [`${path}: ${errorMessage(err)}`];
  }
  const problems: string[] = [];
  for (let p = real, first = true; ; first = false) {
    const st = statSync(p);
    const mode = st.mode & 0o7777;
    if (st.uid !== 0 && st.uid !== uid) problems.push(`${p} is owned by uid ${st.uid}, not by root or by the daemon's user (uid ${uid})`);
    const sticky = !first && st.isDirectory() && (mode & 0o1000) !== 0;
    if ((mode & 0o022) !== 0 && !sticky) problems.push(`${p} is writable by ${(mode & 0o020) !== 0 ? 'its group' : 'others'} (mode 0${(mode & 0o777).toString(8)}): fix it with chmod go-w ${p}`);
    const up = dirname(p);
    if (up === p) return problems;
    p = up;
  }
}

/** Refuses a file the daemon must not trust (see trustProblems), naming what it is. */
export function requireTrusted(path: string, what: string, exitCode: ExitCode): void {
  const problems = trustProblems(path, process.getuid?.() ?? 0);
  if (problems.length > 0) throw new OperatorError(`refusing ${what} ${path}: ${problems.join('; ')}`, exitCode);
}

export interface WriteOptions {
  readonly mode: number;
  /** Replace an existing file (rename); otherwise refuse it (link fails with EEXIST). */
  readonly replace: boolean;
  /** Give the new file this owner and group (when running as root), e.g. to keep the one it replaces. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

/** Thrown by writeFileAtomic when the path exists and replace is false. */
export class FileExistsError extends Error {}

/**
 * Writes `text` to `path`: temp file beside it, fsync, then link (refuses an existing path) or rename (replaces it),
 * then fsync of the directory. A reader never sees a half-written file; on any failure the old file is untouched.
 */
export function writeFileAtomic(path: string, text: string, o: WriteOptions): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, o.mode);
  try {
    try {
      if (o.owner !== undefined && process.getuid?.() === 0) fchownSync(fd, o.owner.uid, o.owner.gid);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (o.replace) renameSync(tmp, path);
    else {
      linkSync(tmp, path);
      unlinkSync(tmp);
    }
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or gone
    }
    if (errnoCode(err) === 'EEXIST') throw new FileExistsError(`${path} already exists`);
    throw err;
  }
  syncDirectory(dirname(path));
}

/** fsync of a directory, so a rename or a new file in it survives a crash. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** JSON pointer "/profiles/prod/ports/0" -> "profiles.prod.ports[0]". */
export function jsonPath(pointer: string): string {
  if (pointer === '') return '(top level)';
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}
