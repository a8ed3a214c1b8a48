// The knock's signer, from -i or a profile's "identity": a private key file (sesame or OpenSSH), or a key in ssh-agent named by its public key file or its SHA256: fingerprint. Operator input: the identity setting, key files, SSH_AUTH_SOCK and the agent's answers.
import { EXIT, OperatorError } from '../errors.ts';
import { fileExists, readText } from '../files.ts';
import { toHex } from '../protocol/bytes.ts';
import type { UserPublicKey } from '../protocol/bytes.ts';
import { isOpenSshPrivateKey, loadSigningKey, parseUserPublicKey, sshFingerprint } from '../protocol/keyfile.ts';
import { deriveKeyId, fingerprint } from '../protocol/keys.ts';
import { sodium } from '../protocol/sodium.ts';
import type { Prompt } from '../passphrase.ts';
import { agentIdentities, agentSign } from './agent.ts';

export interface Signer {
  readonly publicKey: UserPublicKey;
  /** An Ed25519 signature over exactly `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** Which identity this is, for --verbose: file or agent, with its fingerprints and key id. */
  readonly describe: string;
}

export interface IdentityContext {
  /** SSH_AUTH_SOCK, if set. */
  readonly agentSocket: string | undefined;
  /** Whether the identity is the default path (for the "run sesame keygen" advice). */
  readonly isDefault: boolean;
  readonly prompt?: Prompt;
}

const keyError = (message: string): OperatorError => new OperatorError(message, EXIT.key);

/** Both fingerprints of a key: sesame's (SHA-256 of the 32 key bytes) and ssh's (of the ssh-ed25519 blob, as ssh-add -l prints). */
const fingerprints = (key: UserPublicKey): string => `${fingerprint(key)}, ssh-add -l: ${sshFingerprint(key)}, key id ${toHex(deriveKeyId(key))}`;

/** The agent key with this public key (or, for a "SHA256:" name, either fingerprint), or a message saying why there is none. */
async function findInAgent(ctx: IdentityContext, matches: (key: UserPublicKey) => boolean, what: string, otherwise: string): Promise<UserPublicKey> {
  if (ctx.agentSocket === undefined || ctx.agentSocket === '') {
    throw keyError(`${what} names a key in ssh-agent, but SSH_AUTH_SOCK is not set (start ssh-agent and ssh-add the key${otherwise})`);
  }
  const keys = await agentIdentities(ctx.agentSocket);
  const found = keys.find((k) => matches(k.publicKey));
  if (found === undefined) {
    throw keyError(`${what} is not among the ${keys.length} ssh-ed25519 key(s) in ssh-agent (SSH_AUTH_SOCK=${ctx.agentSocket}): ssh-add it${otherwise}`);
  }
  return found.publicKey;
}

function agentSigner(socket: string, publicKey: UserPublicKey, from: string): Signer {
  return { publicKey, sign: (message) => agentSign(socket, publicKey, message), describe: `identity: ssh-agent key ${fingerprints(publicKey)} (chosen by ${from})` };
}

/** A public key file's key, if the file holds one public key line; undefined for anything else. */
function publicKeyIn(text: string): UserPublicKey | undefined {
  try {
    return parseUserPublicKey(text.split('\n')[0] ?? '').key;
  } catch {
    return undefined;
  }
}

/** The signer for an identity setting: "SHA256:..." (agent), a public key file (agent), or a private key file. Needs loadSodium(). */
export async function openIdentity(identity: string, ctx: IdentityContext): Promise<Signer> {
  if (identity.startsWith('SHA256:')) {
    const key = await findInAgent(ctx, (k) => fingerprint(k) === identity || sshFingerprint(k) === identity, `identity ${identity}`, '');
    return agentSigner(ctx.agentSocket ?? '', key, identity);
  }
  if (!fileExists(identity)) {
    const which = ctx.isDefault ? 'no identity key at' : 'identity key file does not exist:';
    throw keyError(`${which} ${identity}\nCreate one with "sesame keygen" and send the public key line it prints to the server's admin; or pass -i FILE (a private key, a public key whose key is in ssh-agent, or SHA256:FINGERPRINT).`);
  }
  const text = readText(identity, 'identity key file', EXIT.key);
  const publicKey = publicKeyIn(text);
  if (publicKey !== undefined) {
    const privatePath = identity.endsWith('.pub') ? identity.slice(0, -'.pub'.length) : undefined;
    const otherwise = privatePath !== undefined && fileExists(privatePath) ? `, or pass -i ${privatePath}` : '';
    const key = await findInAgent(ctx, (k) => Buffer.from(k).equals(Buffer.from(publicKey)), `the key of ${identity} (${sshFingerprint(publicKey)})`, otherwise);
    return agentSigner(ctx.agentSocket ?? '', key, identity);
  }
  // Like ssh, an OpenSSH key whose public half sits beside it is used through the agent when the agent holds it: no passphrase asked.
  const beside = isOpenSshPrivateKey(text) && ctx.agentSocket !== undefined && ctx.agentSocket !== '' && fileExists(`${identity}.pub`) ? publicKeyIn(readText(`${identity}.pub`, 'public key', EXIT.key)) : undefined;
  if (beside !== undefined && ctx.agentSocket !== undefined) {
    const inAgent = await agentIdentities(ctx.agentSocket).catch(() => []);
    if (inAgent.some((k) => Buffer.from(k.publicKey).equals(Buffer.from(beside)))) return agentSigner(ctx.agentSocket, beside, `${identity}.pub`);
  }
  const { keys, format } = await loadSigningKey(identity, ctx.prompt);
  return {
    publicKey: keys.publicKey,
    sign: async (message) => sodium().crypto_sign_detached(message, keys.secretKey),
    describe: `identity: file ${identity} (${format} private key; ${fingerprints(keys.publicKey)})`,
  };
}
