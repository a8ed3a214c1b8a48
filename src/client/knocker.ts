// Client: read the identity and the server key, make fresh knocks, send the first one and wait for the port. Trusts its typed settings; key files are parsed by protocol/keyfile.ts.
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { concat, toHex } from '../protocol/bytes.ts';
import type { ServerPublicKey } from '../protocol/bytes.ts';
import type { RandomBytes } from '../protocol/build.ts';
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
  /** A fresh knock each call: new nonce, new timestamp, new ephemeral key (and a new signature, from the file's key or the agent). */
  build(): Promise<Uint8Array>;
  readonly keyIdHex: string;
  /** What was used, for --verbose: the identity and the server key, each with its fingerprint. */
  readonly used: string;
}

/** Where a server key is missing: a name that is no profile is told apart from a host without --server-key. */
function missingServerKey(s: KnockSettings, name: string, configFile: string, profiles: readonly string[]): OperatorError {
  const get = `get the server's public key file (one line "sesame-x25519 BASE64 comment") from its admin`;
  if (s.profile !== undefined) return new OperatorError(`profile "${s.profile}" in ${configFile} has no "serverKey": ${get} and set it there, or pass --server-key FILE`, EXIT.key);
  if (profiles.length > 0) {
    return new OperatorError(
      `"${name}" is not a profile in ${configFile} (profiles: ${profiles.join(', ')}), nor the "host" of one; ` +
        `to knock at a host of that name without a profile, pass --server-key FILE`,
      EXIT.config,
    );
  }
  return new OperatorError(
    `no server public key for ${s.host} (and no profile of that name: ${configFile} has none): ${get},\n` +
      `then pass --server-key FILE, or set "serverKey" in a profile in ${configFile} (see sesame knock --help)`,
    EXIT.key,
  );
}

/**
 * Reads both keys (identity first: a missing one is the usual first-run problem) and returns a knock factory.
 * libsodium and msgpackr load here, lazily, so --help and flag errors stay fast and the host lookup runs meanwhile.
 */
export async function prepareKnock(s: KnockSettings, configFile: string, name = s.host, profiles: readonly string[] = []): Promise<Knocker> {
  const [sodium, keyfile, build, { deriveKeyId, fingerprint }, { openIdentity }, { MAX_PACKET_BYTES, WIRE }] = await Promise.all([
    import('../protocol/sodium.ts'),
    import('../protocol/keyfile.ts'),
    import('../protocol/build.ts'),
    import('../protocol/keys.ts'),
    import('./identity.ts'),
    import('../protocol/layout.ts'),
  ]);
  await sodium.loadSodium();
  const signer = await openIdentity(s.identity, { agentSocket: process.env['SSH_AUTH_SOCK'], isDefault: s.identity === DEFAULT_IDENTITY() });
  const key = s.serverKey;
  if (key === undefined) throw missingServerKey(s, name, configFile, profiles);
  const server = key.kind === 'file' ? keyfile.readServerPublicKey(key.path).key : inlineServerKey(keyfile.parseServerPublicKey, key.line, key.where);
  const request: KnockRequest = {
    access: s.access,
    ...(s.durationSeconds === undefined ? {} : { durationSeconds: s.durationSeconds }),
    ...(s.openAddress === undefined ? {} : { openAddress: s.openAddress }),
  };
  const keyId = deriveKeyId(signer.publicKey);
  const used = [signer.describe, `server key ${fingerprint(server)} (${key.kind === 'file' ? key.path : key.where})`].join('\n');
  const knock = async (random: RandomBytes): Promise<Uint8Array> => {
    // buildKnock's steps with the signature from the signer, so an agent's key signs the same bytes a file's key would.
    const payload = build.encodePayload(request, Date.now(), random(WIRE.nonceBytes));
    const signature = await signer.sign(build.signedMessage(server, payload));
    const packet = build.framePacket(concat(keyId, signature, payload), server, random);
    if (packet.length > MAX_PACKET_BYTES) throw new RangeError(`knock is ${packet.length} bytes, over the ${MAX_PACKET_BYTES}-byte limit: ask for fewer ports`);
    return packet;
  };
  return { build: () => knock(build.systemRandom), keyIdHex: toHex(keyId), used };
}

/** Sends the first knock, waits for tcp/port, and returns the open socket or throws the wait failure. */
export async function knockAndWait(s: KnockSettings, knocker: Knocker, target: Target, port: number): Promise<WaitOutcome & { ok: true }> {
  const sender = openSender(target, s.knockPort);
  try {
    await sender.send(await knocker.build());
    const outcome = await waitForPort(target, port, s.timeoutSeconds * 1000, async () => sender.send(await knocker.build()));
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
