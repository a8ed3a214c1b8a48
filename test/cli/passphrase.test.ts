// The passphrase prompt as ssh has it: on /dev/tty with no echo (driven through a real pseudo-terminal with `script`), also when stdin and stdout are not the terminal (a ProxyCommand); SSH_ASKPASS where ssh uses it; keygen's two prompts.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { promptRoute } from '../../src/passphrase.ts';
import { CLI } from '../helpers/daemon.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'sesame-passphrase-'));
const PASS = 'tty secret 42';
const missing = ['/usr/bin/script', '/usr/bin/ssh-keygen', '/usr/bin/setsid'].filter((t) => !existsSync(t));
if (missing.length > 0 && process.env['CI'] !== undefined && process.env['CI'] !== '') throw new Error(`CI must run the passphrase tests, but ${missing.join(', ')} are missing`);
const skip = missing.length > 0 ? `missing: ${missing.join(', ')}` : undefined;

after(() => rmSync(dir, { recursive: true, force: true }));

test('promptRoute follows read_passphrase in ssh: terminal first; askpass only with a display or SSH_ASKPASS_REQUIRE=force', () => {
  const tty = (): number => 42;
  const none = (): undefined => undefined;
  const cases: [Record<string, string>, () => number | undefined, string][] = [
    [{}, tty, 'tty'],
    [{}, none, 'none'],
    [{ SSH_ASKPASS: '/a' }, none, 'none'],
    [{ DISPLAY: ':0', SSH_ASKPASS: '/a' }, tty, 'tty'],
    [{ DISPLAY: ':0', SSH_ASKPASS: '/a' }, none, 'askpass /a'],
    [{ WAYLAND_DISPLAY: 'w', SSH_ASKPASS: '/a' }, none, 'askpass /a'],
    [{ DISPLAY: ':0' }, none, 'askpass /usr/bin/ssh-askpass'],
    [{ DISPLAY: ':0', SSH_ASKPASS: '/a', SSH_ASKPASS_REQUIRE: 'prefer' }, tty, 'askpass /a'],
    [{ SSH_ASKPASS: '/a', SSH_ASKPASS_REQUIRE: 'prefer' }, tty, 'tty'],
    [{ SSH_ASKPASS: '/a', SSH_ASKPASS_REQUIRE: 'force' }, tty, 'askpass /a'],
    [{ SSH_ASKPASS: '/a', SSH_ASKPASS_REQUIRE: 'FORCE' }, none, 'askpass /a'],
    [{ DISPLAY: ':0', SSH_ASKPASS: '/a', SSH_ASKPASS_REQUIRE: 'never' }, none, 'none'],
    [{ DISPLAY: '', SSH_ASKPASS: '/a' }, none, 'none'],
  ];
  for (const [env, open, want] of cases) {
    const r = promptRoute(env, open);
    assert.equal(r.kind === 'askpass' ? `askpass ${r.program}` : r.kind, want, JSON.stringify(env));
  }
});

describe('prompts through a real terminal and through askpass', { skip }, () => {
  let key: string;
  let serverPub: string;
  const config = join(dir, 'client.json');

  before(async () => {
    key = join(dir, 'id_locked');
    await run('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASS, '-f', key]);
    await run(process.execPath, [CLI, 'keygen', '--server', '-f', join(dir, 'server.key')]);
    serverPub = join(dir, 'server.pub');
    writeFileSync(config, '{}\n');
  });

  /** Runs argv under `script` (a pseudo-terminal), typing each answer once its prompt has appeared; returns the terminal transcript. */
  function onTerminal(argv: readonly string[], replies: readonly [RegExp, string][]): Promise<{ code: number | null; transcript: string }> {
    const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('/usr/bin/script', ['-qec', quoted, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TERM: 'dumb' } });
    let transcript = '';
    const pending = [...replies];
    let seen = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      transcript += chunk.toString('utf8');
      const next = pending[0];
      // Answer only after the prompt: typed earlier, the terminal would still be echoing (cooked mode).
      if (next !== undefined && next[0].test(transcript.slice(seen))) {
        seen = transcript.length;
        pending.shift();
        setTimeout(() => child.stdin.write(`${next[1]}\r`), 50);
      }
    });
    const timer = setTimeout(() => child.kill(), 20_000);
    return new Promise((resolve) => child.on('close', (code) => (clearTimeout(timer), child.stdin.destroy(), resolve({ code, transcript }))));
  }

  test('knock -i ENCRYPTED_KEY asks on the terminal without echo, also with stdin and stdout away from it (as in a ProxyCommand)', async () => {
    const out = join(dir, 'packet.txt');
    const shell = `exec '${process.execPath}' '${CLI}' knock example.invalid -i '${key}' --server-key '${serverPub}' --print-packet --config '${config}' </dev/null >'${out}'`;
    const r = await onTerminal(['sh', '-c', shell], [[/Enter passphrase for key/, 'wrong'], [/Enter passphrase for key/, PASS]]);
    assert.equal(r.code, 0, r.transcript);
    assert.match(r.transcript, /Enter passphrase for key '.*id_locked': /);
    assert.match(r.transcript, /Bad passphrase, try again/);
    assert.ok(!r.transcript.includes(PASS) && !r.transcript.includes('wrong'), `no echo: ${JSON.stringify(r.transcript)}`);
    assert.match(readFileSync(out, 'utf8'), /^[0-9a-f]{300,}\n$/, 'stdout carried only the packet');
  });

  test('with no terminal: SSH_ASKPASS with DISPLAY, or SSH_ASKPASS_REQUIRE=force; otherwise a clear error', async () => {
    const askpass = join(dir, 'askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\necho "$1" > '${join(dir, 'asked.txt')}'\nprintf '%s\\n' '${PASS}'\n`, { mode: 0o700 });
    const knock = (env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> =>
      run('/usr/bin/setsid', ['-w', process.execPath, CLI, 'knock', 'example.invalid', '-i', key, '--server-key', serverPub, '--print-packet', '--config', config], {
        env: { PATH: process.env['PATH'] ?? '', ...env },
      }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    for (const env of [{ DISPLAY: ':99', SSH_ASKPASS: askpass }, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' }]) {
      const r = await knock(env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^[0-9a-f]+\n$/);
      assert.match(readFileSync(join(dir, 'asked.txt'), 'utf8'), /Enter passphrase for key '.*id_locked'/);
    }
    for (const env of [{ SSH_ASKPASS: askpass }, { DISPLAY: ':99', SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'never' }]) {
      const r = await knock(env);
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /no terminal to ask on/);
    }
  });

  test('keygen asks twice on the terminal, without echo, and writes a key only that passphrase opens', async () => {
    const path = join(dir, 'kg_tty');
    const r = await onTerminal([process.execPath, CLI, 'keygen', '-f', path], [[/Enter passphrase \(empty for no passphrase\): /, PASS], [/Enter same passphrase again: /, PASS]]);
    assert.equal(r.code, 0, r.transcript);
    assert.ok(!r.transcript.includes(PASS), 'no echo');
    await assert.rejects(run('/usr/bin/ssh-keygen', ['-y', '-P', 'not it', '-f', path]));
    const { stdout } = await run('/usr/bin/ssh-keygen', ['-y', '-P', PASS, '-f', path]);
    assert.equal(stdout.split(' ')[1], readFileSync(`${path}.pub`, 'utf8').split(' ')[1]);
    const mismatch = await onTerminal([process.execPath, CLI, 'keygen', '-f', join(dir, 'kg_mismatch')], [[/Enter passphrase/, 'one'], [/Enter same passphrase again/, 'two']]);
    assert.equal(mismatch.code, 2, mismatch.transcript);
    assert.match(mismatch.transcript, /Passphrases do not match/);
    assert.ok(!existsSync(join(dir, 'kg_mismatch')), 'no key written');
  });
});
