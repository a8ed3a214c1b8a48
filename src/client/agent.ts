// An ssh-agent client for two requests of the agent protocol: list the identities, and sign with an ssh-ed25519 one. Trusts nothing the agent sends: every length is bounded and checked.
import { createConnection } from 'node:net';
import { userPublicKey } from '../protocol/bytes.ts';
import type { UserPublicKey } from '../protocol/bytes.ts';
import { sshPublicBlob } from '../protocol/keyfile.ts';
import { EXIT, OperatorError } from '../errors.ts';
import { AGENT } from '../limits.ts';

/** Message numbers (draft-ietf-sshm-ssh-agent, section 6.1). */
const MSG = { failure: 5, requestIdentities: 11, identitiesAnswer: 12, signRequest: 13, signResponse: 14 } as const;

const ED25519 = 'ssh-ed25519';
const SIGNATURE_BYTES = 64;

export interface AgentKey {
  readonly publicKey: UserPublicKey;
  readonly comment: string;
}

const agentError = (message: string): OperatorError => new OperatorError(message, EXIT.key);

/** Reads SSH wire strings (uint32 length, bytes) from one message, never past its end. */
class Reader {
  private at = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  uint32(): number {
    if (this.at + 4 > this.buf.length) throw agentError('ssh-agent sent a truncated message');
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  string(): Buffer {
    const n = this.uint32();
    if (n > this.buf.length - this.at) throw agentError('ssh-agent sent a truncated message');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  done(): boolean {
    return this.at === this.buf.length;
  }
}

function sshString(bytes: Uint8Array): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(bytes.length);
  return Buffer.concat([head, bytes]);
}

function frame(type: number, body: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1);
  head.writeUInt8(type, 4);
  return Buffer.concat([head, body]);
}

/** The 32-byte key of an ssh-ed25519 public key blob, or undefined for any other blob. */
function ed25519Key(blob: Buffer): UserPublicKey | undefined {
  const r = new Reader(blob);
  try {
    if (r.string().toString('latin1') !== ED25519) return undefined;
    const key = r.string();
    return r.done() && key.length === 32 ? userPublicKey(Uint8Array.from(key)) : undefined;
  } catch {
    return undefined;
  }
}

/** One request over a fresh connection to the agent, and its answer; the connection is closed either way. */
function request(socketPath: string, type: number, body: Uint8Array): Promise<{ type: number; body: Reader }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let pending: Buffer = Buffer.alloc(0);
    const done = (err: Error | undefined, m?: { type: number; body: Reader }): void => {
      clearTimeout(timer);
      socket.destroy();
      if (m !== undefined) resolve(m);
      else reject(err ?? agentError('ssh-agent closed the connection without answering'));
    };
    const timer = setTimeout(() => done(agentError(`ssh-agent did not answer within ${AGENT.timeoutMs / 1000} s`)), AGENT.timeoutMs);
    socket.on('connect', () => socket.write(frame(type, body)));
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 4) return;
      const length = pending.readUInt32BE(0);
      if (length < 1 || length > AGENT.maxMessageBytes) return done(agentError(`ssh-agent sent a message of ${length} bytes (at most ${AGENT.maxMessageBytes})`));
      if (pending.length < 4 + length) return undefined;
      const message = pending.subarray(4, 4 + length);
      return done(undefined, { type: message.readUInt8(0), body: new Reader(message.subarray(1)) });
    });
    socket.on('error', (err) => done(agentError(`cannot use ssh-agent at SSH_AUTH_SOCK=${socketPath}: ${err.message}`)));
    socket.on('close', () => done(undefined));
  });
}

/** The agent's ssh-ed25519 keys, in its order; other key types are left out. */
export async function agentIdentities(socketPath: string): Promise<AgentKey[]> {
  const { type, body } = await request(socketPath, MSG.requestIdentities, new Uint8Array(0));
  if (type !== MSG.identitiesAnswer) throw agentError(`ssh-agent refused to list its keys (answer ${type})`);
  const count = body.uint32();
  const keys: AgentKey[] = [];
  for (let i = 0; i < count; i++) {
    const blob = body.string();
    const comment = body.string().toString('utf8');
    const publicKey = ed25519Key(blob);
    if (publicKey !== undefined) keys.push({ publicKey, comment });
  }
  return keys;
}

/** The agent's signature over exactly `data`: for ssh-ed25519, a plain Ed25519 (RFC 8032) signature. */
export async function agentSign(socketPath: string, publicKey: UserPublicKey, data: Uint8Array): Promise<Uint8Array> {
  const { type, body } = await request(socketPath, MSG.signRequest, Buffer.concat([sshString(sshPublicBlob(publicKey)), sshString(data), Buffer.alloc(4)]));
  if (type === MSG.failure) throw agentError('ssh-agent refused to sign (a key added with ssh-add -c that was not confirmed, or a key it no longer holds)');
  if (type !== MSG.signResponse) throw agentError(`ssh-agent sent answer ${type} to a signing request`);
  const sig = new Reader(body.string());
  const algorithm = sig.string().toString('latin1');
  const bytes = sig.string();
  if (algorithm !== ED25519 || bytes.length !== SIGNATURE_BYTES || !sig.done()) throw agentError(`ssh-agent sent a malformed ${algorithm} signature`);
  return Uint8Array.from(bytes);
}
