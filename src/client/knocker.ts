// Client: read the identity and the server key, make fresh knocks, send the first one and wait for the port. Trusts its typed settings; key files are parsed by protocol/keyfile.ts.
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { fileExists } from '../files.ts';
import { toHex } from '../protocol/bytes.ts';
import type { ServerPublicKey } from '../protocol/bytes.ts';
import type { KnockRequest } from '../protocol/build.ts';
import type { PublicKeyLine } from '../protocol/keyfile.ts';
import { DEFAULT_IDENTITY } from './profile.ts';
import type { KnockSettings } from './profile.ts';
import { openSender } from './send.ts';
import type { Target } from './send.ts';
import { explainNotOpened, waitForPort } from './wait.ts';
import type { WaitOutcome } from './wait.ts';

function inlineServerKey(parseLine: (line: string) => PublicKeyLine<ServerPublicKey>, line: string, where: string): ServerPublicKey {
  try {
    return parseLine(line).key;
  } catch (err) {
    throw new OperatorError(`${where}: ${errorMessage(err)}`, EXIT.key);
  }
}

export interface Knocker {
  /** A fresh knock each call: new nonce, new timestamp, new ephemeral key. */
  build(): Uint8Array;
  readonly keyIdHex: string;
  /** What was used, for --verbose: the identity and the server key, each with its fingerprint. */
  readonly used: string;
}

/**
 * Reads both keys (identity first: a missing one is the usual first-run problem) and returns a knock factory.
 * libsodium and msgpackr load here, lazily, so --help and flag errors stay fast and the host lookup runs meanwhile.
 */
export async function prepareKnock(s: KnockSettings, configFile: string): Promise<Knocker> {
  const [sodium, keyfile, { buildKnock, systemRandom }, { deriveKeyId, fingerprint }] = await Promise.all([import('../protocol/sodium.ts'), import('../protocol/keyfile.ts'), import('../protocol/build.ts'), import('../protocol/keys.ts')]);
  await sodium.loadSodium();
  if (!fileExists(s.identity)) {
    const which = s.identity === DEFAULT_IDENTITY() ? 'no identity key at' : 'identity key file does not exist:';
    throw new OperatorError(
      `${which} ${s.identity}\nCreate one with "sesame keygen" and send the public key line it prints to the server's admin; or pass -i FILE.`,
      EXIT.key,
    );
  }
  const user = keyfile.readUserSecretKey(s.identity);
  const key = s.serverKey;
  if (key === undefined) {
    throw new OperatorError(
      `no server public key for ${s.host}: get the server's public key file (one line "sesame-x25519 BASE64 comment") from its admin,\n` +
        `then pass --server-key FILE, or set "serverKey" in a profile in ${configFile} (see sesame knock --help)`,
      EXIT.key,
    );
  }
  const server = key.kind === 'file' ? keyfile.readServerPublicKey(key.path).key : inlineServerKey(keyfile.parseServerPublicKey, key.line, key.where);
  const request: KnockRequest = {
    access: s.access,
    ...(s.durationSeconds === undefined ? {} : { durationSeconds: s.durationSeconds }),
    ...(s.openAddress === undefined ? {} : { openAddress: s.openAddress }),
  };
  const keyIdHex = toHex(deriveKeyId(user.publicKey));
  const used = [
    `identity ${s.identity} (key id ${keyIdHex}, ${fingerprint(user.publicKey)})`,
    `server key ${fingerprint(server)} (${key.kind === 'file' ? key.path : key.where})`,
  ].join('\n');
  return { build: () => buildKnock(request, user, server, Date.now(), systemRandom), keyIdHex, used };
}

/** Sends the first knock, waits for tcp/port, and returns the open socket or throws the wait failure. */
export async function knockAndWait(s: KnockSettings, knocker: Knocker, target: Target, port: number): Promise<WaitOutcome & { ok: true }> {
  const sender = openSender(target, s.knockPort);
  try {
    await sender.send(knocker.build());
    const outcome = await waitForPort(target, port, s.timeoutSeconds * 1000, () => sender.send(knocker.build()));
    if (!outcome.ok) {
      const serverKey = s.serverKey?.kind === 'file' ? s.serverKey.path : (s.serverKey?.where ?? '?');
      const context = { target, port, knockPort: s.knockPort, knocks: sender.sent, timeoutSeconds: s.timeoutSeconds, serverKey, keyIdHex: knocker.keyIdHex };
      throw new OperatorError(explainNotOpened(outcome, context, new Date()), EXIT.notOpened);
    }
    return outcome;
  } finally {
    sender.close();
  }
}
