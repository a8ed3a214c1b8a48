// The ssh-agent client against a scripted agent on a Unix socket: answers it must refuse (too long, truncated, wrong type, malformed signature) and key types it must skip. The real ssh-agent is in identity.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { agentIdentities, agentSign } from '../../src/client/agent.ts';
import { OperatorError } from '../../src/errors.ts';
import { userPublicKey } from '../../src/protocol/bytes.ts';
import { sshPublicBlob } from '../../src/protocol/keyfile.ts';

const dir = mkdtempSync(join(tmpdir(), 'sesame-agent-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const str = (b: Uint8Array | string): Buffer => {
  const body = typeof b === 'string' ? Buffer.from(b, 'latin1') : Buffer.from(b);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const message = (type: number, body: Buffer): Buffer => Buffer.concat([u32(body.length + 1), Buffer.from([type]), body]);

let n = 0;
/** A one-answer agent: whatever it is asked, it sends `reply` (raw bytes) and leaves the connection open, or closes it after. */
async function fakeAgent(reply: Buffer, close = false): Promise<{ path: string; server: Server }> {
  const path = join(dir, `a${n++}.sock`);
  const server = createServer((c) => c.once('data', () => (close ? c.end(reply) : c.write(reply))));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

const key = userPublicKey(new Uint8Array(32).fill(7));
const refused = async (reply: Buffer, call: (path: string) => Promise<unknown>, pattern: RegExp, close = false): Promise<void> => {
  const { path, server } = await fakeAgent(reply, close);
  try {
    await assert.rejects(call(path), (err: unknown) => err instanceof OperatorError && err.exitCode === 4 && pattern.test(err.message));
  } finally {
    server.close();
  }
};

test('identities: ssh-ed25519 keys are kept, other types skipped', async () => {
  const rsaBlob = Buffer.concat([str('ssh-rsa'), str(Buffer.alloc(3, 1)), str(Buffer.alloc(64, 2))]);
  const reply = message(12, Buffer.concat([u32(2), str(rsaBlob), str('rsa key'), str(sshPublicBlob(key)), str('ed key')]));
  const { path, server } = await fakeAgent(reply);
  try {
    const keys = await agentIdentities(path);
    assert.equal(keys.length, 1);
    assert.deepEqual(Buffer.from(keys[0]?.publicKey ?? []), Buffer.from(key));
    assert.equal(keys[0]?.comment, 'ed key');
  } finally {
    server.close();
  }
});

test('answers the client refuses: too long, truncated, wrong type, a refused or malformed signature', async () => {
  await refused(Buffer.concat([u32(300 * 1024), Buffer.from([12])]), agentIdentities, /message of 307200 bytes \(at most 262144\)/);
  await refused(message(12, Buffer.concat([u32(1), u32(1000)])), agentIdentities, /truncated/);
  await refused(message(5, Buffer.alloc(0)), agentIdentities, /refused to list its keys/);
  await refused(message(5, Buffer.alloc(0)), (p) => agentSign(p, key, Buffer.from('m')), /refused to sign/);
  await refused(message(14, str(Buffer.concat([str('ssh-ed25519'), str(Buffer.alloc(63))]))), (p) => agentSign(p, key, Buffer.from('m')), /malformed ssh-ed25519 signature/);
  await refused(message(14, str(Buffer.concat([str('rsa-sha2-256'), str(Buffer.alloc(64))]))), (p) => agentSign(p, key, Buffer.from('m')), /malformed rsa-sha2-256 signature/);
  await refused(u32(2), agentIdentities, /closed the connection without answering/, true);
});

test('a socket that is not there is named with SSH_AUTH_SOCK', async () => {
  await assert.rejects(agentIdentities(join(dir, 'none.sock')), /cannot use ssh-agent at SSH_AUTH_SOCK=.*none\.sock/);
});
