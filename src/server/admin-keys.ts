// Admin keys: the Ed25519 public keys a server trusts to sign users documents (config adminKeys: key lines or files), and the one place `sesame user` loads an admin's private key. Operator input; a bad entry is an operator error naming it.
import { toHex } from '../protocol/bytes.ts';
import type { UserPublicKey } from '../protocol/bytes.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { readText } from '../files.ts';
import { parseUserPublicKey, loadSigningKey } from '../protocol/keyfile.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import type { UserKeys } from '../protocol/keys.ts';

/** Trusted admin keys by key id (hex): a signature names its signer, so checking it is one lookup. */
export type AdminKeys = ReadonlyMap<string, UserPublicKey>;

const isKeyLine = (entry: string): boolean => /^\s*(sesame-ed25519|ssh-ed25519)\s/.test(entry);

/** Each entry is a key line or a file holding one (config.ts resolved the paths); `where` names the config. */
export function loadAdminKeys(entries: readonly string[], where: string): AdminKeys {
  const keys = new Map<string, UserPublicKey>();
  entries.forEach((entry, i) => {
    try {
      const line = isKeyLine(entry) ? entry : (readText(entry, 'admin public key', EXIT.key).split('\n')[0] ?? '');
      const key = parseUserPublicKey(line).key;
      keys.set(toHex(deriveKeyId(key)), key);
    } catch (err) {
      throw new OperatorError(`${where}: /adminKeys/${i}: ${isKeyLine(entry) ? '' : `${entry}: `}${errorMessage(err)}`, EXIT.key);
    }
  });
  return keys;
}

/**
 * The admin's private key for signing: --admin-key FILE, or SESAME_ADMIN_KEY. The one call to the private-key loader,
 * so a loader that also reads OpenSSH keys and passphrases replaces it here alone.
 */
export async function loadAdminSigner(flag: string | undefined): Promise<UserKeys> {
  const path = flag ?? process.env['SESAME_ADMIN_KEY'];
  if (path === undefined || path === '') throw new OperatorError('the users document is signed: give the admin private key with --admin-key FILE or SESAME_ADMIN_KEY=FILE', EXIT.usage);
  // The one key loader: a sesame key or an OpenSSH one (sesame keygen writes those), asking for its passphrase as ssh does.
  return (await loadSigningKey(path)).keys;
}
