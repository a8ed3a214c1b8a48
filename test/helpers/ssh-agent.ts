// A throwaway real ssh-agent, ssh-add driven through SSH_ASKPASS, and an unencrypted OpenSSH key file written from a given seed (for fixture keys derived from a label). Trusts the test code that calls it; writes only under its own temp dir.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SshAgent {
  readonly socket: string;
  /** ssh-add FILE with this agent; an encrypted file's passphrase goes through SSH_ASKPASS (forced, no terminal). */
  add(file: string, passphrase?: string): Promise<{ code: number; stderr: string }>;
  stop(): void;
}

/** Starts `ssh-agent -D -a SOCKET` and resolves once the socket exists. */
export async function startAgent(): Promise<SshAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-agent-'));
  const socket = join(dir, 'agent.sock');
  const child: ChildProcess = spawn('/usr/bin/ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (let i = 0; i < 200 && !existsSync(socket); i++) await sleep(10);
  if (!existsSync(socket)) {
    child.kill();
    throw new Error('ssh-agent did not create its socket within 2 s');
  }
  return {
    socket,
    add(file, passphrase = '') {
      const askpass = join(dir, `askpass-${Date.now()}.sh`);
      writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${passphrase.replace(/'/g, `'\\''`)}'\n`, { mode: 0o700 });
      // setsid: no controlling terminal, so ssh-add cannot ask on one even when the tests run from a terminal.
      const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SSH_AUTH_SOCK: socket, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' };
      return new Promise((resolve) => {
        execFile('setsid', ['-w', '/usr/bin/ssh-add', file], { env, encoding: 'utf8', timeout: 15_000 }, (err, _stdout, stderr) => {
          resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stderr });
        });
      });
    },
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function sshString(bytes: Uint8Array | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length);
  return Buffer.concat([head, b]);
}

/**
 * An unencrypted openssh-key-v1 file for the Ed25519 key with this seed (PROTOCOL.key in OpenSSH). Test-only: ssh-keygen
 * cannot take a seed and OpenSSH 9.2 loads no PKCS#8 Ed25519 keys, so a fixture key from a label is written here.
 */
export function opensshKeyFromSeed(seed: Uint8Array, publicKey: Uint8Array, comment: string): string {
  const pub = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
  const check = Buffer.from('5e5a4d3e5e5a4d3e', 'hex');
  let priv = Buffer.concat([check, sshString('ssh-ed25519'), sshString(publicKey), sshString(Buffer.concat([seed, publicKey])), sshString(comment)]);
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0', 'latin1'), sshString('none'), sshString('none'), sshString(''), Buffer.from([0, 0, 0, 1]), sshString(pub), sshString(priv)]);
  const b64 = body.toString('base64').replace(/.{70}/g, '$&\n');
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END OPENSSH PRIVATE KEY-----\n`;
}

/** The path of a file written 0600 (as ssh-add demands) in dir. */
export function writePrivate(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}
