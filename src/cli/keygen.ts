// `sesame keygen`: writes a user Ed25519 keypair or, with --server, a server X25519 keypair. Operator input: flags and paths.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { hostname } from 'node:os';
import { DEFAULT_SERVER_DIR, defaultComment, parse } from './args.ts';
import { DEFAULT_IDENTITY } from '../client/profile.ts';
import { toHex } from '../protocol/bytes.ts';
import { EXIT, OperatorError } from '../errors.ts';
import { requirePrintable } from '../text.ts';
import { deriveKeyId, fingerprint, generateServerKeys } from '../protocol/keys.ts';
import { formatKeyLine, KEY_TYPE, parseUserPublicKey, publicPathFor, refuseExistingPair, sshFingerprint, writeKeyPair } from '../protocol/keyfile.ts';
import { loadSodium } from '../protocol/sodium.ts';

const HELP = `usage: sesame keygen [-f PATH] [-C COMMENT] [-N PASSPHRASE] [--force]
       sesame keygen --server [-f PATH] [-C COMMENT] [--force]

Creates a keypair: PATH holds the private key (mode 0600); the public key goes to NAME.pub for a PATH
named NAME.key (server.key -> server.pub), to PATH.pub otherwise (id_ed25519 -> id_ed25519.pub).
A user key is an OpenSSH Ed25519 key, as ssh-keygen -t ed25519 writes it: encrypted with its passphrase
(aes256-ctr, bcrypt-pbkdf), ssh-add loads it, and its public line is "ssh-ed25519 BASE64 COMMENT".

  -f, --file PATH     where to write the private key
                      user key default:   ~/.config/sesame/id_ed25519 ($XDG_CONFIG_HOME honoured)
                      server key default: ${DEFAULT_SERVER_DIR}/server.key
  -C, --comment TEXT  comment stored in the public key line (default: user@host, or "sesame server HOST")
  -N, --passphrase P  the user key's passphrase; -N '' for none (scripts). Without -N it is asked for twice,
                      on the terminal (or SSH_ASKPASS, as ssh uses it). Like ssh-keygen's -N, a passphrase
                      on the command line is visible to other local users while keygen runs.
      --server        create the server's X25519 key instead of a user's Ed25519 key
      --force         replace existing key files (the old key stops working)
  -h, --help          show this text

A user key's public line ("${KEY_TYPE.sshPublic} BASE64 COMMENT") goes to the server admin, who adds it with
"sesame user add NAME --key FILE". The server's public line ("${KEY_TYPE.serverPublic} BASE64 COMMENT") goes
to every user, who passes it to "sesame knock --server-key FILE" or puts it in a profile.
`;

export async function keygen(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    file: { type: 'string', short: 'f' },
    comment: { type: 'string', short: 'C' },
    passphrase: { type: 'string', short: 'N' },
    server: { type: 'boolean' },
    force: { type: 'boolean' },
  }, false);
  if (values.help === true) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  if (values.comment !== undefined) requirePrintable('--comment', values.comment, EXIT.usage);
  if (values.server === true && values.passphrase !== undefined) throw new OperatorError('-N applies to user keys only: the daemon reads its server key unattended', EXIT.usage);
  await loadSodium();
  const isServer = values.server === true;
  const path = resolve(values.file ?? (isServer ? join(DEFAULT_SERVER_DIR, 'server.key') : DEFAULT_IDENTITY()));
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const force = values.force === true;
  if (isServer) {
    const keys = generateServerKeys();
    const comment = values.comment ?? `sesame server ${hostname()}`;
    writeKeyPair(path, formatKeyLine(KEY_TYPE.serverSecret, keys.secretKey, comment), formatKeyLine(KEY_TYPE.serverPublic, keys.publicKey, comment), force);
    const pub = publicPathFor(path);
    process.stdout.write(`Wrote server private key ${path} (0600) and public key ${pub}.\nFingerprint: ${fingerprint(keys.publicKey)}\nGive ${pub} to your users; keep ${path} on the server only.\n`);
    return EXIT.ok;
  }
  refuseExistingPair(path, force);
  const passphrase = values.passphrase ?? (await askNewPassphrase());
  const { generateOpenSshKey } = await import('../protocol/openssh.ts');
  const pair = generateOpenSshKey(values.comment ?? defaultComment(), passphrase);
  const publicKey = parseUserPublicKey(pair.publicLine).key;
  writeKeyPair(path, pair.privateText, pair.publicLine, force);
  process.stdout.write(
    `Wrote private key ${path} (0600, OpenSSH format, ${passphrase === '' ? 'no passphrase' : 'encrypted with its passphrase'}) and public key ${publicPathFor(path)}.\n` +
      `Key id: ${toHex(deriveKeyId(publicKey))}\nFingerprint: ${fingerprint(publicKey)} (ssh-keygen -l: ${sshFingerprint(publicKey)})\n` +
      `Send this line to the server's admin (sesame user add NAME --key FILE):\n${pair.publicLine}`,
  );
  return EXIT.ok;
}

/** ssh-keygen's two prompts; no terminal (and no askpass) is a usage error pointing at -N. */
async function askNewPassphrase(): Promise<string> {
  const { terminalPrompt } = await import('../passphrase.ts');
  const ask = async (prompt: string): Promise<string> => {
    try {
      return await terminalPrompt(prompt);
    } catch (err) {
      if (err instanceof OperatorError && /no terminal/.test(err.message)) throw new OperatorError(`no terminal to ask for the new key's passphrase: pass -N PASSPHRASE, or -N '' for a key without one`, EXIT.usage);
      throw err;
    }
  };
  const first = await ask('Enter passphrase (empty for no passphrase): ');
  if ((await ask('Enter same passphrase again: ')) !== first) throw new OperatorError('Passphrases do not match; no key written.', EXIT.usage);
  return first;
}
