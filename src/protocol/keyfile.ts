// Key files: one-line text formats, 0600 atomic writes that never overwrite by accident, and ssh-like refusal of private keys others can read. Trusts nothing read from disk.
import { createHash } from 'node:crypto';
import { fromBase64, serverPublicKey, serverSecretKey, toBase64, userPublicKey } from './bytes.ts';
import type { ServerPublicKey, UserPublicKey } from './bytes.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { fileExists, FileExistsError, readNoFollow, readText, writeFileAtomic } from '../files.ts';
import { serverKeysFromSecret, userKeysFromSeed } from './keys.ts';
import type { ServerKeys, UserKeys } from './keys.ts';
import { loadSodium, sodium } from './sodium.ts';
import type { Prompt } from '../passphrase.ts';

export const KEY_TYPE = {
  userPublic: 'sesame-ed25519',
  userSecret: 'sesame-ed25519-secret',
  serverPublic: 'sesame-x25519',
  serverSecret: 'sesame-x25519-secret',
  sshPublic: 'ssh-ed25519',
} as const;

export interface PublicKeyLine<K> {
  readonly key: K;
  readonly comment: string;
}

const keyError = (message: string): OperatorError => new OperatorError(message, EXIT.key);

function cleanComment(comment: string): string {
  return comment.replace(/[\r\n]/g, ' ').trim();
}

export function formatKeyLine(type: string, key: Uint8Array, comment: string): string {
  const c = cleanComment(comment);
  return c === '' ? `${type} ${toBase64(key)}\n` : `${type} ${toBase64(key)} ${c}\n`;
}

/** Splits "TYPE BASE64 [comment]" and decodes the base64; undefined if the shape is wrong. */
function splitLine(line: string): { type: string; blob: Uint8Array; comment: string } | undefined {
  const m = /^\s*(\S+)\s+(\S+)(?:\s+(.*?))?\s*$/.exec(line);
  if (m === null) return undefined;
  const blob = fromBase64(m[2] ?? '');
  return blob === undefined ? undefined : { type: m[1] ?? '', blob, comment: m[3] ?? '' };
}

/** OpenSSH public key blob: string "ssh-ed25519" || string(32-byte key), each with a 4-byte big-endian length. */
function sshEd25519Key(blob: Uint8Array): Uint8Array | undefined {
  const view = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (view.length !== 4 + 11 + 4 + 32 || view.readUInt32BE(0) !== 11) return undefined;
  if (view.toString('latin1', 4, 15) !== KEY_TYPE.sshPublic || view.readUInt32BE(15) !== 32) return undefined;
  return Uint8Array.from(view.subarray(19));
}

/** The OpenSSH public key blob of an Ed25519 key: what ssh-agent and authorized_keys name it by. */
export function sshPublicBlob(key: UserPublicKey): Uint8Array {
  const view = Buffer.alloc(4 + 11 + 4 + 32);
  view.writeUInt32BE(11, 0);
  view.write(KEY_TYPE.sshPublic, 4, 'latin1');
  view.writeUInt32BE(32, 15);
  view.set(key, 19);
  return view;
}

/** The fingerprint ssh-keygen -l and ssh-add -l print for an ssh-ed25519 key: SHA-256 over the public key blob. */
export function sshFingerprint(key: UserPublicKey): string {
  return `SHA256:${createHash('sha256').update(sshPublicBlob(key)).digest('base64').replace(/=+$/, '')}`;
}

/** A user public key: "sesame-ed25519 BASE64 comment" or an OpenSSH "ssh-ed25519 BASE64 comment" line. */
export function parseUserPublicKey(line: string): PublicKeyLine<UserPublicKey> {
  const parts = splitLine(line);
  if (parts?.type === KEY_TYPE.userPublic && parts.blob.length === 32) return { key: userPublicKey(parts.blob), comment: parts.comment };
  if (parts?.type === KEY_TYPE.sshPublic) {
    const key = sshEd25519Key(parts.blob);
    if (key !== undefined) return { key: userPublicKey(key), comment: parts.comment };
  }
  throw keyError(`not a user public key (expected "${KEY_TYPE.userPublic} BASE64 [comment]" or "${KEY_TYPE.sshPublic} BASE64 [comment]")`);
}

export function parseServerPublicKey(line: string): PublicKeyLine<ServerPublicKey> {
  const parts = splitLine(line);
  if (parts?.type === KEY_TYPE.serverPublic && parts.blob.length === 32) return { key: serverPublicKey(parts.blob), comment: parts.comment };
  throw keyError(`not a server public key (expected "${KEY_TYPE.serverPublic} BASE64 [comment]")`);
}

/** Like OpenSSH's sshkey_perm_ok: a private key others can read is refused, not silently used. */
function checkPrivateKeyMode(path: string, fileMode: number): void {
  const mode = fileMode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw keyError(
      `Permissions 0${mode.toString(8)} for '${path}' are too open.\n` +
        `It is required that private key files are NOT accessible by others.\n` +
        `This private key will be ignored. Fix it with: chmod 600 ${path}`,
    );
  }
}

function readSecret(path: string, type: string, what: string): Uint8Array {
  const { text, mode } = readNoFollow(path, what, EXIT.key);
  checkPrivateKeyMode(path, mode);
  const parts = splitLine(text.split('\n')[0] ?? '');
  if (parts === undefined || parts.type !== type || parts.blob.length !== 32) throw keyError(`${path} is not a ${what} (expected one line "${type} BASE64")`);
  return parts.blob;
}

export function readUserSecretKey(path: string): UserKeys {
  const seed = readSecret(path, KEY_TYPE.userSecret, 'user private key');
  const keys = userKeysFromSeed(seed);
  sodium().memzero(seed);
  return keys;
}

export function readServerSecretKey(path: string): ServerKeys {
  return serverKeysFromSecret(serverSecretKey(readSecret(path, KEY_TYPE.serverSecret, 'server private key')));
}

export function readUserPublicKey(path: string): PublicKeyLine<UserPublicKey> {
  return parseUserPublicKey(readText(path, 'user public key', EXIT.key).split('\n')[0] ?? '');
}

export function readServerPublicKey(path: string): PublicKeyLine<ServerPublicKey> {
  const text = readText(path, 'server public key', EXIT.key);
  try {
    return parseServerPublicKey(text.split('\n')[0] ?? '');
  } catch (err) {
    throw keyError(`${path}: ${errorMessage(err)}`);
  }
}

/** An atomic write that refuses (without force) to replace a key file. */
function writeKeyFile(path: string, text: string, mode: number, force: boolean): void {
  try {
    writeFileAtomic(path, text, { mode, replace: force });
  } catch (err) {
    if (err instanceof FileExistsError) throw keyError(`${path} already exists; not overwriting it (use --force to replace it)`);
    throw err;
  }
}

/** The one naming rule for key pairs: NAME.key has its public half in NAME.pub (server.key, server.pub); any other PATH in PATH.pub (id_ed25519.pub, as ssh-keygen names it). */
export function publicPathFor(path: string): string {
  return path.endsWith('.key') ? `${path.slice(0, -'.key'.length)}.pub` : `${path}.pub`;
}

/** Writes PATH (secret, 0600) and its public half (0644, publicPathFor); refuses if either exists unless force. */
/** Refuses (without force) when either file of a key pair exists: checked before keygen asks for a passphrase, and again when writing. */
export function refuseExistingPair(path: string, force: boolean, publicPath = publicPathFor(path)): void {
  if (!force) {
    for (const p of [path, publicPath]) if (fileExists(p)) throw keyError(`${p} already exists; not overwriting it (use --force to replace it)`);
  }
}

export function writeKeyPair(path: string, secretLine: string, publicLine: string, force: boolean, publicPath = publicPathFor(path)): void {
  refuseExistingPair(path, force, publicPath);
  writeKeyFile(path, secretLine, 0o600, force);
  writeKeyFile(publicPath, publicLine, 0o644, force);
}

/** Whether the text is an OpenSSH private key file, by its armour line only: which parser to use, not whether it is valid. */
export const isOpenSshPrivateKey = (text: string): boolean => text.trimStart().startsWith('-----BEGIN OPENSSH PRIVATE KEY-----');

/** A private key as loadSigningKey read it, and what it was, for --verbose. */
export interface SigningKey {
  readonly keys: UserKeys;
  readonly format: 'sesame' | 'OpenSSH' | 'OpenSSH, encrypted';
}

const PASSPHRASE_TRIES = 3;

/** A public key line where a private key is needed: say so, rather than advising chmod on a .pub file. */
function refusePublicKey(path: string, text: string): void {
  try {
    parseUserPublicKey(text.split('\n')[0] ?? '');
  } catch {
    return;
  }
  const hint = path.endsWith('.pub') ? ` (the private key is usually ${path.slice(0, -'.pub'.length)})` : '';
  throw keyError(`${path} is a public key; a private key is needed here${hint}`);
}

async function readOpenSsh(path: string, text: string, prompt: Prompt | undefined): Promise<SigningKey> {
  const { parseOpenSshPrivateKey } = await import('./openssh.ts');
  let parsed = parseOpenSshPrivateKey(text);
  for (let tries = 0; !parsed.ok && (parsed.reason === 'passphrase_needed' || parsed.reason === 'bad_passphrase'); tries++) {
    if (tries === PASSPHRASE_TRIES) throw keyError(`incorrect passphrase for ${path} (${PASSPHRASE_TRIES} tries)`);
    if (tries > 0) process.stderr.write('Bad passphrase, try again.\n');
    const ask = prompt ?? (await import('../passphrase.ts')).terminalPrompt;
    parsed = parseOpenSshPrivateKey(text, await ask(`Enter passphrase for key '${path}': `));
  }
  if (!parsed.ok) {
    const why = parsed.reason === 'not_ed25519' ? `not an Ed25519 key (${parsed.detail}); sesame signs with ssh-ed25519 keys only` : `not a valid OpenSSH private key (${parsed.detail})`;
    throw keyError(`${path}: ${why}`);
  }
  const keys = userKeysFromSeed(parsed.seed);
  sodium().memzero(parsed.seed);
  if (!Buffer.from(keys.publicKey).equals(Buffer.from(parsed.publicKey))) throw keyError(`${path}: its public and private halves do not match`);
  return { keys, format: parsed.encrypted ? 'OpenSSH, encrypted' : 'OpenSSH' };
}

/**
 * The one loader of user (and admin) signing keys: a sesame private key file, or an OpenSSH Ed25519 private key file
 * (encrypted ones ask for the passphrase with `prompt`, by default on the terminal or through SSH_ASKPASS, as ssh
 * does). Refused, naming the file: a public key, a key others can read, a symbolic link, anything else.
 */
export async function loadSigningKey(path: string, prompt?: Prompt): Promise<SigningKey> {
  await loadSodium();
  const { text, mode } = readNoFollow(path, 'private key', EXIT.key);
  refusePublicKey(path, text);
  checkPrivateKeyMode(path, mode);
  if (isOpenSshPrivateKey(text)) return readOpenSsh(path, text, prompt);
  const parts = splitLine(text.split('\n')[0] ?? '');
  if (parts === undefined || parts.type !== KEY_TYPE.userSecret || parts.blob.length !== 32) {
    throw keyError(`${path} is not a user private key (expected an OpenSSH ed25519 private key, or one line "${KEY_TYPE.userSecret} BASE64")`);
  }
  const keys = userKeysFromSeed(parts.blob);
  sodium().memzero(parts.blob);
  return { keys, format: 'sesame' };
}
