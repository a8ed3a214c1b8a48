// The invitation side of `sesame user add --host` and `sesame user invite`: the server's part of the line (host, knock port, public keys) and printing it, with a QR code on a terminal. Operator input: flags; the users document is already validated.
import { EXIT, OperatorError } from '../errors.ts';
import { parseAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import type { ServerPublicKey } from '../protocol/bytes.ts';
import { readServerSecretKey } from '../protocol/keyfile.ts';
import { fingerprint } from '../protocol/keys.ts';
import { sodium } from '../protocol/sodium.ts';
import { formatInvitation, INVITE, parseHost, qrText } from '../client/invite.ts';
import type { ServerConfig } from '../server/config.ts';
import type { UsersFile } from '../server/users.ts';
import { userViews } from '../server/users-edit.ts';
import { printable } from '../text.ts';

/** What an invitation says about the server; undefined for add without --host and without publicHost. */
export interface InvitationServer {
  readonly host: string;
  readonly knockPort: number;
  readonly serverKeys: readonly ServerPublicKey[];
}

export function invitationServer(action: string, config: ServerConfig, v: { host?: string | undefined; 'knock-port'?: string | undefined; qr?: boolean | undefined }): InvitationServer | undefined {
  const hostText = v.host ?? config.publicHost;
  if (hostText === undefined) {
    if (action === 'invite') throw new OperatorError(`sesame user invite needs --host HOST, or "publicHost" in ${config.file}: the name or address users knock at (the server cannot know its public name)`, EXIT.usage);
    if (v.qr === true || v['knock-port'] !== undefined) throw new OperatorError(`${v.qr === true ? '--qr' : '--knock-port'} is for the invitation, which needs --host HOST (or "publicHost" in ${config.file})`, EXIT.usage);
    return undefined;
  }
  const host = parseHost(hostText);
  if (!host.ok) throw new OperatorError(`--host: ${host.reason}`, EXIT.usage);
  const portText = v['knock-port'];
  const knockPort = portText === undefined ? config.knockPort : /^[1-9]\d{0,4}$/.test(portText) && Number(portText) <= 65_535 ? Number(portText) : undefined;
  if (knockPort === undefined) throw new OperatorError(`--knock-port ${JSON.stringify(portText)}: expected a port number 1-65535`, EXIT.usage);
  return { host: host.value, knockPort, serverKeys: serverPublicKeys(config) };
}

/**
 * The public halves of the server's private key files, in the config's order (clients knock with the first). Derived
 * from the private keys the daemon uses, so a stale .pub file cannot slip into an invitation.
 */
function serverPublicKeys(config: ServerConfig): ServerPublicKey[] {
  const files = config.serverKeyPaths;
  if (files.length === 0 || files.length > INVITE.maxServerKeys) throw new OperatorError(`${config.file} names ${files.length} server key files; an invitation carries 1 to ${INVITE.maxServerKeys}`, EXIT.config);
  return files.map((path) => {
    const keys = readServerSecretKey(path);
    sodium().memzero(keys.secretKey);
    return keys.publicKey;
  });
}

/** The invitation line; on a terminal, how to use it; on a terminal or with --qr, the QR code. */
export async function printInvitation(doc: UsersFile, name: string, server: InvitationServer | undefined, qr: boolean, afterAdd: boolean): Promise<number> {
  if (server === undefined) throw new Error('printInvitation without --host');
  const v = userViews(doc).find((u) => u.name === name);
  if (v === undefined) throw new OperatorError(`no user "${name}" (sesame user list shows who there is)`, EXIT.config);
  const all = v.ports.map(parseAccess).filter((a): a is Access => a !== undefined);
  if (all.length > INVITE.maxAccessEntries) process.stderr.write(`sesame: warning: ${name} may open ${all.length} ports and one knock asks for at most ${INVITE.maxAccessEntries}: the invitation lists the first ${INVITE.maxAccessEntries}\n`);
  if (v.keys.length === 0) process.stderr.write(`sesame: warning: ${name} has no active key: the invitation opens nothing until one is added\n`);
  const line = formatInvitation({ ...server, access: all.slice(0, INVITE.maxAccessEntries) });
  const tty = process.stdout.isTTY === true;
  const text = [
    ...(afterAdd && tty ? [''] : []),
    line,
    ...(tty ? ['', `Give this line to ${name}: it holds no secret. On their machine: sesame profile import LINE`, `server key ${server.serverKeys.map(fingerprint).join(', ')} (the import prints it too: compare)`] : []),
  ];
  process.stdout.write(`${text.map(printable).join('\n')}\n${qr || tty ? `\n${await qrText(line, tty)}` : ''}`);
  return EXIT.ok;
}
