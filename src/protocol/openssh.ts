// OpenSSH private key files (openssh-key-v1, bcrypt-pbkdf encrypted or not) through the ssh2 library: read an Ed25519 key's seed, write a new key. Trusts nothing in the file; the format and the KDF are ssh2's, not parsed here.
import { createPrivateKey } from 'node:crypto';
import keyParser from 'ssh2/lib/protocol/keyParser.js';
import keygen from 'ssh2/lib/keygen.js';
import { PASSPHRASE } from '../limits.ts';

/** ssh-keygen's cipher for new keys. */
const CIPHER = 'aes256-ctr';

export type OpenSshKey =
  | { readonly ok: true; readonly seed: Uint8Array; readonly publicKey: Uint8Array; readonly comment: string; readonly encrypted: boolean }
  | { readonly ok: false; readonly reason: 'passphrase_needed' | 'bad_passphrase' | 'not_ed25519' | 'malformed'; readonly detail: string };

/**
 * An Ed25519 key from an OpenSSH private key file. Without a passphrase, an encrypted file answers
 * "passphrase_needed"; a wrong one fails OpenSSH's check bytes and answers "bad_passphrase".
 */
export function parseOpenSshPrivateKey(text: string, passphrase?: string): OpenSshKey {
  const parsed = passphrase === undefined ? keyParser.parseKey(text) : keyParser.parseKey(text, Buffer.from(passphrase, 'utf8'));
  if (parsed instanceof Error) {
    const detail = parsed.message;
    if (/no passphrase given/i.test(detail)) return { ok: false, reason: 'passphrase_needed', detail };
    if (/integrity check failed|bad decrypt/i.test(detail)) return { ok: false, reason: 'bad_passphrase', detail };
    if (/Unsupported OpenSSH private key type/i.test(detail)) return { ok: false, reason: 'not_ed25519', detail };
    return { ok: false, reason: 'malformed', detail };
  }
  if (parsed.type !== 'ssh-ed25519') return { ok: false, reason: 'not_ed25519', detail: `a ${parsed.type} key` };
  const pem = parsed.getPrivatePEM();
  if (!parsed.isPrivateKey() || pem === null) return { ok: false, reason: 'malformed', detail: 'no private key in the file' };
  const jwk = createPrivateKey(pem).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string') return { ok: false, reason: 'not_ed25519', detail: 'not an Ed25519 key' };
  const seed = new Uint8Array(Buffer.from(jwk.d, 'base64url'));
  const publicKey = new Uint8Array(Buffer.from(jwk.x, 'base64url'));
  if (seed.length !== 32 || publicKey.length !== 32) return { ok: false, reason: 'malformed', detail: 'Ed25519 key of the wrong length' };
  return { ok: true, seed, publicKey, comment: parsed.comment, encrypted: passphrase !== undefined };
}

/** An ssh-ed25519 public key blob: string "ssh-ed25519" (4 + 11 bytes) and string key (4 + 32 bytes). */
const ED25519_BLOB_BYTES = 51;
/** A drawn key is kept with probability 255/256 (see below): 8 draws fail together with probability 2^-64. */
const MAX_DRAWS = 8;

/**
 * A new Ed25519 key as ssh-keygen writes it: the private key file's text (aes256-ctr with bcrypt-pbkdf, 16 rounds,
 * when the passphrase is not empty) and the public "ssh-ed25519 BASE64 comment" line.
 * ssh2 1.17 writes a public key whose first byte is 0 as 31 bytes (one key in 256; found by test/e2e/readme.test.ts):
 * such a draw is thrown away and another made, so every key sesame writes is a well-formed one.
 */
export function generateOpenSshKey(comment: string, passphrase: string): { readonly privateText: string; readonly publicLine: string } {
  const options = passphrase === '' ? { comment } : { comment, passphrase: Buffer.from(passphrase, 'utf8'), cipher: CIPHER, rounds: PASSPHRASE.kdfRounds };
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const pair = keygen.generateKeyPairSync('ed25519', options);
    const blob = Buffer.from(pair.public.split(' ')[1] ?? '', 'base64');
    if (blob.length !== ED25519_BLOB_BYTES) continue;
    return { privateText: pair.private.endsWith('\n') ? pair.private : `${pair.private}\n`, publicLine: pair.public.endsWith('\n') ? pair.public : `${pair.public}\n` };
  }
  throw new Error(`ssh2 wrote ${MAX_DRAWS} malformed Ed25519 keys in a row`);
}
