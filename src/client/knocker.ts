// Client: read the identity and the server key(s), make fresh knocks, send them and watch for the port and this knock's confirmation. Trusts its typed settings; key files are parsed by protocol/keyfile.ts, agents spoken to by agent.ts.
import type { Socket } from 'node:net';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { concat, toHex } from '../protocol/bytes.ts';
import type { ServerPublicKey } from '../protocol/bytes.ts';
import type { KnockRequest, RandomBytes } from '../protocol/build.ts';
import type { PublicKeyLine } from '../protocol/keyfile.ts';
import { DEFAULT_IDENTITY } from './profile.ts';
import type { KnockSettings, ServerKeySource } from './profile.ts';
import { openSender } from './send.ts';
import type { Target } from './send.ts';
import { explainNotOpened, likelyCauses } from './wait.ts';
import { knockOnce, tryNextKey } from './outcome.ts';
import { formatRange, pickPorts } from '../port-range.ts';

function inlineServerKey(parseLine: (line: string) => PublicKeyLine<ServerPublicKey>, line: string, where: string): ServerPublicKey {
  try {
    return parseLine(line).key;
  } catch (err) {
    throw new OperatorError(`${where}: ${errorMessage(err)}`, EXIT.key);
  }
}

export interface Knocker {
  /** A fresh knock each call: new nonce, new timestamp, new ephemeral key, a new signature (the file's key or the agent); naming confirmPort if given. */
  build(confirmPort?: number): Promise<Uint8Array>;
  readonly keyIdHex: string;
  /** What was used, for --verbose: the identity (file or agent) and the server key, each with its fingerprint. */
  readonly used: string;
  /** Where the server key came from (a path, or "FILE: profiles.NAME.serverKeys[0]"), for messages. */
  readonly serverKeyWhere: string;
  /** The same identity with each further server key of the profile (a rotation), tried in order while a knock is not confirmed. */
  readonly fallbacks: readonly Knocker[];
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
  const serverOf = (k: ServerKeySource): ServerPublicKey => (k.kind === 'file' ? keyfile.readServerPublicKey(k.path).key : inlineServerKey(keyfile.parseServerPublicKey, k.line, k.where));
  const request: KnockRequest = {
    access: s.access,
    ...(s.durationSeconds === undefined ? {} : { durationSeconds: s.durationSeconds }),
    ...(s.openAddress === undefined ? {} : { openAddress: s.openAddress }),
  };
  const keyId = deriveKeyId(signer.publicKey);
  const knockerFor = (k: ServerKeySource): Knocker => {
    const server = serverOf(k);
    const where = k.kind === 'file' ? k.path : k.where;
    const used = [signer.describe, `server key ${fingerprint(server)} (${where})`].join('\n');
    // buildKnock's steps with the signature from the signer, so an agent's key signs the same bytes a file's key would.
    const knock = async (confirmPort: number | undefined, random: RandomBytes): Promise<Uint8Array> => {
      const nowMs = Date.now();
      const payload = build.encodePayload(confirmPort === undefined ? request : { ...request, confirmPort }, nowMs, random(WIRE.nonceBytes));
      const signature = await signer.sign(build.signedMessage(server, payload));
      const packet = build.framePacket(concat(keyId, signature, payload), server, nowMs, random);
      if (packet.length > MAX_PACKET_BYTES) throw new RangeError(`knock is ${packet.length} bytes, over the ${MAX_PACKET_BYTES}-byte limit: ask for fewer ports`);
      return packet;
    };
    return { build: (confirmPort) => knock(confirmPort, build.systemRandom), keyIdHex: toHex(keyId), used, serverKeyWhere: where, fallbacks: [] };
  };
  return { ...knockerFor(key), fallbacks: s.moreServerKeys.map(knockerFor) };
}

export interface Opened {
  readonly verdict: 'confirmed' | 'unconfirmed';
  /** The connection that proved the port open, unread. */
  readonly socket: Socket;
  /** What happened, for stderr (one or more lines). */
  readonly message: string;
}

/**
 * Knocks for tcp/port naming a random port of the confirmation range, with the server key and then each fallback key
 * while the knock is not confirmed; returns a confirmed or reachable-but-unconfirmed port, or throws the failure.
 */
export async function knockAndWait(s: KnockSettings, knocker: Knocker, target: Target, port: number): Promise<Opened> {
  const ports = pickPorts(s.confirmPorts);
  const where = `tcp/${port} on ${target.host} (${target.address})`;
  const notes: string[] = [];
  let reachable: { socket: Socket; knocker: Knocker; answersAll: boolean } | undefined;
  let failure: OperatorError | undefined;
  for (const k of [knocker, ...knocker.fallbacks]) {
    const sender = openSender(target, s.knockPort);
    const o = await knockOnce({ target, port, ports, timeoutMs: s.timeoutSeconds * 1000, sender, build: () => k.build(ports.confirm) }).finally(() => sender.close());
    const context = { target, port, knockPort: s.knockPort, knocks: sender.sent, timeoutSeconds: s.timeoutSeconds, serverKey: k.serverKeyWhere, keyIdHex: k.keyIdHex };
    if (o.verdict === 'confirmed' && o.socket !== undefined) {
      reachable?.socket.destroy();
      const after = notes.length === 0 ? '' : `\n${notes.join('\n')}`;
      return { verdict: 'confirmed', socket: o.socket, message: `${where} is open: the server confirmed this knock (${o.elapsedMs} ms after the knock)${after}` };
    }
    if (knocker.fallbacks.length > 0) notes.push(`(with server key ${k.serverKeyWhere}: not confirmed)`);
    if (o.socket === undefined) {
      const why = o.verdict === 'confirmedClosed'
        ? `${where}: the server confirmed the knock, but the port did not accept a connection within ${s.timeoutSeconds} s: something between you and the service drops it (another firewall), or the service is not up`
        : o.wait.ok ? `${where} did not open` : explainNotOpened(o.wait, context, new Date());
      failure = new OperatorError([why, ...notes].join('\n'), EXIT.notOpened);
    } else if (reachable === undefined) reachable = { socket: o.socket, knocker: k, answersAll: o.confirmation === 'answersAll' };
    else o.socket.destroy();
    if (!tryNextKey(o.verdict)) break;
  }
  if (reachable === undefined) throw failure ?? new OperatorError(`${where} did not open`, EXIT.notOpened);
  const k = reachable.knocker;
  const context = { target, port, knockPort: s.knockPort, knocks: 0, timeoutSeconds: s.timeoutSeconds, serverKey: k.serverKeyWhere, keyIdHex: k.keyIdHex };
  return {
    verdict: 'unconfirmed',
    socket: reachable.socket,
    message: [
      `${where} is reachable, but the server did NOT confirm this knock: an earlier grant for this address is still open (or the port is not protected), and this knock was probably refused.`,
      ...(reachable.answersAll ? [`(the host also answered a port of ${formatRange(s.confirmPorts)} this knock did not name: the server's confirmPorts are not ${formatRange(s.confirmPorts)} (--confirm-ports, or "confirmPorts" in the profile), or it is too old to confirm)`] : []),
      ...likelyCauses(context, new Date()),
      ...notes,
    ].join('\n'),
  };
}
