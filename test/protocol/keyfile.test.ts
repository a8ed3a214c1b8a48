// Key files and `sesame keygen`: formats, 0600 writes that never overwrite by accident, refusal of keys others can read.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { toBase64 } from '../../src/protocol/bytes.ts';
import { OperatorError } from '../../src/errors.ts';
import { deriveKeyId, fingerprint, generateUserKeys } from '../../src/protocol/keys.ts';
import { loadSigningKey, parseServerPublicKey, parseUserPublicKey, readServerPublicKey, readServerSecretKey, readUserPublicKey } from '../../src/protocol/keyfile.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI } from '../helpers/daemon.ts';

const dir = mkdtempSync(join(tmpdir(), 'sesame-keyfile-'));
before(async () => { await loadSodium(); });
after(() => rmSync(dir, { recursive: true, force: true }));

const keygen = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await promisify(execFile)(process.execPath, [CLI, 'keygen', ...args]);
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof OperatorError && err.exitCode === 4 && pattern.test(err.message));
}

async function refusedAsync(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof OperatorError && err.exitCode === 4 && pattern.test(err.message));
}

test('keygen writes a 0600 private key and a public line, refuses to overwrite, replaces with --force', async () => {
  const path = join(dir, 'id');
  let r = await keygen('-f', path, '-C', 'alice@laptop', '-N', '');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const pub = readFileSync(`${path}.pub`, 'utf8');
  assert.match(pub, /^ssh-ed25519 [A-Za-z0-9+/]{68} alice@laptop\n$/);
  const { keys, format } = await loadSigningKey(path);
  assert.equal(format, 'OpenSSH');
  assert.deepEqual(Buffer.from(readUserPublicKey(`${path}.pub`).key), Buffer.from(keys.publicKey), 'the public file matches the private key');
  assert.match(r.stdout, new RegExp(Buffer.from(deriveKeyId(keys.publicKey)).toString('hex')));
  r = await keygen('-f', path, '-N', '');
  assert.equal(r.code, 4);
  assert.match(r.stderr, /already exists; not overwriting it \(use --force/);
  assert.equal(readFileSync(`${path}.pub`, 'utf8'), pub, 'unchanged');
  r = await keygen('-f', path, '--force', '-N', '');
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual(readFileSync(`${path}.pub`, 'utf8'), pub);
});

test('keygen --server writes an X25519 pair the server can load: NAME.key and NAME.pub, with its fingerprint', async () => {
  const path = join(dir, 'server.key');
  const r = await keygen('--server', '-f', path);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const keys = readServerSecretKey(path);
  assert.deepEqual(Buffer.from(readServerPublicKey(join(dir, 'server.pub')).key), Buffer.from(keys.publicKey));
  assert.ok(!existsSync(`${path}.pub`), 'no server.key.pub beside it');
  assert.match(r.stdout, new RegExp(`Fingerprint: ${fingerprint(keys.publicKey).replace(/[+/]/g, '\\$&')}\n`));
  assert.equal((await keygen('--server', '-f', path)).code, 4);
  const forced = await keygen('--server', '-f', path, '--force');
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(Buffer.from(readServerPublicKey(join(dir, 'server.pub')).key), Buffer.from(readServerSecretKey(path).publicKey), 'both halves replaced together');
});

test('a private key readable by group or others is refused, naming the file, like ssh', async () => {
  const path = join(dir, 'open');
  assert.equal((await keygen('-f', path, '-N', '')).code, 0);
  for (const mode of [0o640, 0o604, 0o644]) {
    chmodSync(path, mode);
    await refusedAsync(loadSigningKey(path), new RegExp(`Permissions 0${mode.toString(8)} for '${path}' are too open`));
  }
  chmodSync(path, 0o600);
  assert.ok(await loadSigningKey(path));
  await refusedAsync(loadSigningKey(join(dir, 'missing')), /does not exist/);
});

test('public key lines: sesame and OpenSSH ed25519 accepted, everything else refused', () => {
  const k = generateUserKeys();
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.from(k.publicKey)]);
  assert.deepEqual(Buffer.from(parseUserPublicKey(`ssh-ed25519 ${toBase64(blob)} me@host`).key), Buffer.from(k.publicKey));
  assert.equal(parseUserPublicKey(`sesame-ed25519 ${toBase64(k.publicKey)} a comment with spaces`).comment, 'a comment with spaces');
  const bad = [
    '',
    'sesame-ed25519',
    `sesame-ed25519 ${toBase64(k.publicKey.subarray(0, 31))}`,
    `sesame-ed25519 ${toBase64(k.publicKey)}x`,
    `sesame-x25519 ${toBase64(k.publicKey)}`,
    `ssh-rsa ${toBase64(blob)}`,
    `ssh-ed25519 ${toBase64(blob.subarray(0, 50))}`,
    `ssh-ed25519 ${toBase64(Buffer.concat([blob, Buffer.from([0])]))}`,
  ];
  for (const line of bad) refused(() => parseUserPublicKey(line), /not a user public key/);
  refused(() => parseServerPublicKey(`sesame-ed25519 ${toBase64(k.publicKey)}`), /not a server public key/);
  writeFileSync(join(dir, 'junk.pub'), 'hello\n');
  refused(() => readServerPublicKey(join(dir, 'junk.pub')), /junk\.pub: not a server public key/);
});
