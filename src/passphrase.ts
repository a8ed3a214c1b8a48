// Asking a person for a passphrase as ssh does: on /dev/tty with echo off (so it works inside a ProxyCommand, whose stdin and stdout carry ssh's stream), or through SSH_ASKPASS where ssh would use it. Trusts the environment's choice of askpass program, as ssh does.
import { execFile } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { EXIT, OperatorError } from './errors.ts';
import { PASSPHRASE } from './limits.ts';

/** Asks for one passphrase; rejects with an OperatorError when the person cancels or nobody can be asked. */
export type Prompt = (prompt: string) => Promise<string>;

/** ssh's default askpass program (_PATH_SSH_ASKPASS_DEFAULT on Debian). */
const DEFAULT_ASKPASS = '/usr/bin/ssh-askpass';

export type PromptRoute = { readonly kind: 'askpass'; readonly program: string } | { readonly kind: 'tty'; readonly fd: number } | { readonly kind: 'none' };

const set = (v: string | undefined): boolean => v !== undefined && v !== '';

/**
 * read_passphrase() in OpenSSH's readpass.c, for a key's passphrase: the terminal, unless there is none or
 * SSH_ASKPASS_REQUIRE says otherwise; askpass only where a display is set (DISPLAY or WAYLAND_DISPLAY) or
 * SSH_ASKPASS_REQUIRE=force; "prefer" uses askpass when it is allowed; "never" never does.
 */
export function promptRoute(env: NodeJS.ProcessEnv, openTty: () => number | undefined): PromptRoute {
  let allowAskpass = set(env['DISPLAY']) || set(env['WAYLAND_DISPLAY']);
  let useAskpass = false;
  const require = env['SSH_ASKPASS_REQUIRE']?.toLowerCase();
  if (require === 'force') useAskpass = allowAskpass = true;
  else if (require === 'prefer') useAskpass = allowAskpass;
  else if (require === 'never') allowAskpass = false;
  const fd = useAskpass && allowAskpass ? undefined : openTty();
  if (fd === undefined && allowAskpass) return { kind: 'askpass', program: set(env['SSH_ASKPASS']) ? (env['SSH_ASKPASS'] ?? DEFAULT_ASKPASS) : DEFAULT_ASKPASS };
  return fd === undefined ? { kind: 'none' } : { kind: 'tty', fd };
}

function openTty(): number | undefined {
  try {
    return openSync('/dev/tty', constants.O_RDWR | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
}

const cancelled = (): OperatorError => new OperatorError('passphrase entry cancelled', EXIT.key);
const tooLong = (): OperatorError => new OperatorError(`passphrase longer than ${PASSPHRASE.maxBytes} bytes`, EXIT.key);

/** The askpass program gets the prompt as its argument and prints the passphrase; a non-zero exit is a cancel. */
function askpass(program: string, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(program, [prompt], { encoding: 'utf8', maxBuffer: PASSPHRASE.maxBytes + 2 }, (err, stdout) => {
      if (err !== null) {
        reject(err.message.includes('maxBuffer') ? tooLong() : cancelled());
        return;
      }
      resolve(stdout.replace(/\r?\n$/, ''));
    });
  });
}

/** Reads one line on the terminal with echo off (raw mode), handling backspace, ^U, ^C and ^D. */
function readTty(fd: number, prompt: string): Promise<string> {
  writeSync(fd, prompt);
  const input = new ReadStream(fd);
  input.setRawMode(true);
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (err: OperatorError | undefined): void => {
      input.setRawMode(false);
      input.removeAllListeners('data');
      input.destroy();
      try {
        writeSync(fd, '\n');
      } catch {
        // the terminal went away; nothing left to tidy
      }
      if (err === undefined) resolve(line);
      else reject(err);
    };
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish(undefined);
        if (ch === '\x03' || (ch === '\x04' && line === '')) return finish(cancelled());
        if (ch === '\x7f' || ch === '\b') line = line.slice(0, -1);
        else if (ch === '\x15') line = '';
        else if (ch >= ' ' || ch === '\t') line += ch;
        if (Buffer.byteLength(line) > PASSPHRASE.maxBytes) return finish(tooLong());
      }
      return undefined;
    });
    input.on('error', () => finish(cancelled()));
  });
}

/** The prompt sesame uses for keys: the terminal or askpass, as ssh would choose (see promptRoute). */
export const terminalPrompt: Prompt = async (prompt) => {
  const route = promptRoute(process.env, openTty);
  if (route.kind === 'askpass') return askpass(route.program, prompt);
  if (route.kind === 'tty') return readTty(route.fd, prompt);
  throw new OperatorError(`${prompt.replace(/:\s*$/, '')}: no terminal to ask on (and no SSH_ASKPASS with DISPLAY, or SSH_ASKPASS_REQUIRE=force); or ssh-add the key and sign through ssh-agent`, EXIT.key);
};

/** Closes a descriptor promptRoute opened when the route is not used (tests). */
export function closeRoute(route: PromptRoute): void {
  if (route.kind === 'tty') closeSync(route.fd);
}
