// Identities with the real OpenSSH tools: ssh-keygen keys with and without a passphrase, a real ssh-agent (ssh-add through SSH_ASKPASS), the agent-signature vector, and which identity -i picks. No network namespaces: the agent is a local socket.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { agentIdentities, agentSign } from '../../src/client/agent.ts';
import { openIdentity } from '../../src/client/identity.ts';
import type { IdentityContext } from '../../src/client/identity.ts';
import { OperatorError } from '../../src/errors.ts';
import { fromHex, toHex, userPublicKey } from '../../src/protocol/bytes.ts';
import { formatKeyLine, KEY_TYPE, loadSigningKey, parseUserPublicKey, readUserPublicKey, sshFingerprint } from '../../src/protocol/keyfile.ts';
import { deriveKeyId, fingerprint, generateServerKeys, userKeysFromSeed } from '../../src/protocol/keys.ts';
import { knock } from '../../src/cli/knock.ts';
import { checkKnock } from '../helpers/verdict.ts';
import { loadSodium, sodium } from '../../src/protocol/sodium.ts';
import type { Prompt } from '../../src/passphrase.ts';
import { opensshKeyFromSeed, startAgent, writePrivate } from '../helpers/ssh-agent.ts';
import type { SshAgent } from '../helpers/ssh-agent.ts';
import { fixtureSeed } from '../vectors/agent-signature.ts';
import type { AgentVector } from '../vectors/agent-signature.ts';

const TOOLS = ['/usr/bin/ssh-keygen', '/usr/bin/ssh-agent', '/usr/bin/ssh-add'];
const missing = TOOLS.filter((t) => !existsSync(t));
if (missing.length > 0 && process.env['CI'] !== undefined && process.env['CI'] !== '') throw new Error(`CI must run the identity tests, but ${missing.join(', ')} are missing`);
const skip = missing.length > 0 ? `OpenSSH client tools missing: ${missing.join(', ')}` : undefined;

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'sesame-identity-'));
const PASS = 'correct horse battery';

/** A prompt that answers from a list and records what it was asked. */
function answers(...replies: string[]): Prompt & { asked: string[] } {
  const asked: string[] = [];
  const prompt = async (text: string): Promise<string> => {
    asked.push(text);
    const r = replies.shift();
    if (r === undefined) throw new OperatorError('no more answers', 4);
    return r;
  };
  return Object.assign(prompt, { asked });
}

const noPrompt: Prompt = async () => assert.fail('no passphrase should be asked');

async function refused(p: Promise<unknown>, pattern: RegExp, notPattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof OperatorError, String(err));
    assert.match(err.message, pattern);
    if (notPattern !== undefined) assert.doesNotMatch(err.message, notPattern);
    return true;
  });
}

describe('identities with real OpenSSH tools', { skip }, () => {
  let agent: SshAgent;
  let plain: string;
  let locked: string;
  const ctx = (extra: Partial<IdentityContext> = {}): IdentityContext => ({ agentSocket: agent.socket, isDefault: false, prompt: noPrompt, ...extra });

  before(async () => {
    await loadSodium();
    plain = join(dir, 'id_plain');
    locked = join(dir, 'id_locked');
    await run('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'plain', '-f', plain]);
    await run('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASS, '-C', 'locked', '-f', locked]);
    agent = await startAgent();
  });
  after(() => {
    agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an ssh-keygen key without a passphrase loads, and matches its .pub', async () => {
    const { keys, format } = await loadSigningKey(plain, noPrompt);
    assert.equal(format, 'OpenSSH');
    assert.equal(toHex(keys.publicKey), toHex(readUserPublicKey(`${plain}.pub`).key));
  });

  test('an encrypted ssh-keygen key asks as ssh does; a wrong passphrase is asked again, three tries in all', async () => {
    const good = answers('wrong', PASS);
    const { keys, format } = await loadSigningKey(locked, good);
    assert.equal(format, 'OpenSSH, encrypted');
    assert.equal(toHex(keys.publicKey), toHex(readUserPublicKey(`${locked}.pub`).key));
    assert.deepEqual(good.asked, [`Enter passphrase for key '${locked}': `, `Enter passphrase for key '${locked}': `]);
    const bad = answers('a', 'b', 'c', 'd');
    await refused(loadSigningKey(locked, bad), /incorrect passphrase for .*id_locked \(3 tries\)/);
    assert.equal(bad.asked.length, 3);
  });

  test('a public key where a private key is needed: says so, with no chmod advice', async () => {
    await refused(loadSigningKey(`${plain}.pub`, noPrompt), /id_plain\.pub is a public key; a private key is needed here \(the private key is usually .*id_plain\)/, /chmod|too open/);
  });

  test('an RSA key is refused by name: sesame signs with ssh-ed25519 only', async () => {
    const rsa = join(dir, 'id_rsa');
    await run('/usr/bin/ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsa]);
    await refused(loadSigningKey(rsa, noPrompt), /id_rsa: not an Ed25519 key/);
  });

  test('the agent-signature vector: an ssh-agent ssh-ed25519 signature is the plain Ed25519 signature over the exact bytes', async () => {
    const vector: AgentVector = JSON.parse(readFileSync(new URL('../../../test/vectors/agent-signature.json', import.meta.url), 'utf8'));
    const fixture = userKeysFromSeed(fixtureSeed());
    assert.equal(toHex(fixture.publicKey), vector.publicKey, 'the fixture key comes from its label');
    const message = fromHex(vector.message) ?? assert.fail('message hex');
    assert.equal(toHex(sodium().crypto_sign_detached(message, fixture.secretKey)), vector.signature, 'libsodium reproduces the committed signature');
    const file = writePrivate(dir, 'fixture', opensshKeyFromSeed(fixtureSeed(), fixture.publicKey, 'sesame fixture'));
    const added = await agent.add(file);
    assert.equal(added.code, 0, added.stderr);
    const signed = await agentSign(agent.socket, userPublicKey(fromHex(vector.publicKey) ?? new Uint8Array()), message);
    assert.equal(toHex(signed), vector.signature, 'the real ssh-agent gives the same 64 bytes');
    assert.ok(sodium().crypto_sign_verify_detached(signed, message, fixture.publicKey));
  });

  test('ssh-add of an encrypted key through SSH_ASKPASS; then -i FILE.pub, -i SHA256:... (either fingerprint) and -i FILE all sign with the agent, asking nothing', async () => {
    assert.notEqual((await agent.add(locked, 'wrong')).code, 0, 'a wrong passphrase adds nothing');
    const added = await agent.add(locked, PASS);
    assert.equal(added.code, 0, added.stderr);
    const pub = readUserPublicKey(`${locked}.pub`).key;
    assert.ok((await agentIdentities(agent.socket)).some((k) => toHex(k.publicKey) === toHex(pub)));
    for (const identity of [`${locked}.pub`, sshFingerprint(pub), fingerprint(pub), locked]) {
      const signer = await openIdentity(identity, ctx());
      assert.equal(toHex(signer.publicKey), toHex(pub), identity);
      assert.match(signer.describe, /^identity: ssh-agent key /, identity);
      assert.ok(signer.describe.includes(sshFingerprint(pub)), signer.describe);
      const message = new TextEncoder().encode(`knock via ${identity}`);
      assert.ok(sodium().crypto_sign_verify_detached(await signer.sign(message), message, pub), identity);
    }
  });

  test('a profile\'s "identity": "SHA256:..." knocks with the agent key; the server code accepts the packet', async () => {
    const pub = readUserPublicKey(`${locked}.pub`).key;
    const server = generateServerKeys();
    const serverPub = join(dir, 'srv.pub');
    writeFileSync(serverPub, formatKeyLine(KEY_TYPE.serverPublic, server.publicKey, 'srv'));
    const config = join(dir, 'client.json');
    writeFileSync(config, JSON.stringify({ profiles: { prod: { host: 'prod.invalid', serverKey: 'srv.pub', identity: sshFingerprint(pub) } } }));
    let out = '';
    let err = '';
    const saved = process.env['SSH_AUTH_SOCK'];
    process.env['SSH_AUTH_SOCK'] = agent.socket;
    try {
      await knock(['prod', '--print-packet', '-v', '--config', config], { out: (t) => void (out += t), err: (t) => void (err += t) });
    } finally {
      if (saved === undefined) delete process.env['SSH_AUTH_SOCK'];
      else process.env['SSH_AUTH_SOCK'] = saved;
    }
    assert.match(err, new RegExp(`identity: ssh-agent key .*chosen by ${sshFingerprint(pub).replace(/[+/]/g, '\\$&')}`));
    const id = deriveKeyId(userPublicKey(pub));
    const verdict = checkKnock(fromHex(out.trim()) ?? assert.fail('hex'), {
      server,
      lookup: (k) => (toHex(k) === toHex(id) ? { keyId: id, publicKey: userPublicKey(pub), user: 'alice', revoked: false } : undefined),
      nowMs: Date.now(),
      windowMs: 30_000,
    });
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.reason);
    assert.equal(verdict.value.key.user, 'alice');
  });

  test('a file key says so with --verbose; an agent key that is missing, or no agent at all, is a clear error', async () => {
    const file = await openIdentity(plain, ctx());
    assert.match(file.describe, /^identity: file .*id_plain \(OpenSSH private key; SHA256:/);
    await refused(openIdentity(`${plain}.pub`, ctx()), /is not among the \d+ ssh-ed25519 key\(s\) in ssh-agent .*ssh-add it, or pass -i .*id_plain$/);
    await refused(openIdentity(`${plain}.pub`, ctx({ agentSocket: undefined })), /SSH_AUTH_SOCK is not set/, /chmod/);
    await refused(openIdentity('SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', ctx()), /SHA256:A+ is not among/);
    await refused(openIdentity(`${plain}.pub`, ctx({ agentSocket: join(dir, 'no-such.sock') })), /cannot use ssh-agent at SSH_AUTH_SOCK=/);
  });

  test('sesame keygen -N "" and keygen with a passphrase: keys ssh-keygen reads and ssh-add loads (through SSH_ASKPASS)', async () => {
    const cli = new URL('../../src/cli.js', import.meta.url).pathname;
    for (const [name, pass] of [['kg_plain', ''], ['kg_locked', PASS]] as const) {
      const path = join(dir, name);
      await run(process.execPath, [cli, 'keygen', '-f', path, '-N', pass, '-C', name]);
      const pub = readUserPublicKey(`${path}.pub`).key;
      const { stdout } = await run('/usr/bin/ssh-keygen', ['-y', '-P', pass, '-f', path]);
      assert.equal(toHex(parseUserPublicKey(stdout).key), toHex(pub), 'ssh-keygen derives the same public key');
      const added = await agent.add(path, pass);
      assert.equal(added.code, 0, added.stderr);
      assert.ok((await agentIdentities(agent.socket)).some((k) => toHex(k.publicKey) === toHex(pub)), `${name} is in the agent`);
      const { keys } = await loadSigningKey(path, pass === '' ? noPrompt : answers(pass));
      assert.equal(toHex(keys.publicKey), toHex(pub), 'and sesame loads it as a signing key');
    }
  });
});

