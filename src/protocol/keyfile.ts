// Key files: one-line text formats, 0600 atomic writes that never overwrite by accident, and ssh-like refusal of private keys others can read. Trusts nothing read from disk.
import { fromBase64, serverPublicKey, serverSecretKey, toBase64, userPublicKey } from './bytes.ts';
import type { ServerPublicKey, UserPublicKey } from './bytes.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { fileExists, FileExistsError, readNoFollow, readText, writeFileAtomic } from '../files.ts';
import { serverKeysFromSecret, userKeysFromSeed } from './keys.ts';
import type { ServerKeys, UserKeys } from './keys.ts';
import { sodium } from './sodium.ts';

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
export function writeKeyPair(path: string, secretLine: string, publicLine: string, force: boolean, publicPath = publicPathFor(path)): void {
  if (!force) {
    for (const p of [path, publicPath]) if (fileExists(p)) throw keyError(`${p} already exists; not overwriting it (use --force to replace it)`);
  }
  writeKeyFile(path, secretLine, 0o600, force);
  writeKeyFile(publicPath, publicLine, 0o644, force);
}
