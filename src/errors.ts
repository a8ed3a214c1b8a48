// Operator errors (bad flags, config, key files) and the exit codes they map to. Packet drops are never errors: see reasons.ts.

export const EXIT = {
  ok: 0,
  /** Something failed that has no more specific code. */
  failure: 1,
  /** Bad command line. */
  usage: 2,
  /** Config, users or client profile file missing or invalid. */
  config: 3,
  /** Key file missing, malformed, too open, or refusing to overwrite. */
  key: 4,
  /** Host name does not resolve. */
  host: 5,
  /** Knock sent but the port did not open in time (--wait). */
  notOpened: 6,
  /** The firewall backend could not start or is not permitted. */
  firewall: 7,
  /** Network send failed, or the knock port, capture interface or metrics endpoint could not be opened. */
  network: 8,
  /** The state directory (the replay record) cannot be read or written. */
  state: 9,
  /** --wait: the port is reachable (an earlier grant is still open) but the server did not confirm this knock. */
  notConfirmed: 10,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the operator can fix; its message is printed as is, without a stack. */
export class OperatorError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.name = 'OperatorError';
    this.exitCode = exitCode;
  }
}

/** The message of anything thrown, for logs and operator messages. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The errno code of a failed system call ('ENOENT', 'EACCES', ...), or '' for anything else. */
export function errnoCode(err: unknown): string {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '';
}
