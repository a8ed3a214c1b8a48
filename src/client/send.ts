// Client network steps, first half: resolve the server, send knocks over UDP. Trusts its typed inputs; parses nothing from the network.
import { lookup } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import { errnoCode, errorMessage, EXIT, OperatorError } from '../errors.ts';

export interface Target {
  /** As the user gave it, for messages. */
  readonly host: string;
  readonly address: string;
  readonly family: 4 | 6;
}

/** The errno code where there is one (ECONNREFUSED says more than its message), else the message. */
export const errorText = (err: unknown): string => errnoCode(err) || errorMessage(err);

/** One address for both the knock and the TCP connect: the server opens for the knock's source address. */
export async function resolveHost(host: string, family: 4 | 6 | undefined): Promise<Target> {
  let found: { address: string; family: number };
  try {
    found = await lookup(host, { family: family ?? 0 });
  } catch (err) {
    const v = family === undefined ? '' : ` to an IPv${family} address`;
    throw new OperatorError(`cannot resolve host "${host}"${v} (${errorText(err)}): check the name (or the profile's "host"), or give an IP address`, EXIT.host);
  }
  if (found.family !== 4 && found.family !== 6) throw new OperatorError(`host "${host}" resolved to an unsupported address ${found.address}`, EXIT.host);
  if (family !== undefined && found.family !== family) throw new OperatorError(`${host} is an IPv${found.family} address, but -${family} (or the profile's "family") asks for IPv${family}`, EXIT.usage);
  return { host, address: found.address, family: found.family };
}

export interface Sender {
  send(packet: Uint8Array): Promise<void>;
  readonly sent: number;
  close(): void;
}

/** One UDP socket for the first knock and any re-knocks. Send errors (no route, ...) are network errors. */
export function openSender(target: Target, knockPort: number): Sender {
  const socket = createSocket(target.family === 6 ? 'udp6' : 'udp4');
  let sent = 0;
  let failure: unknown;
  socket.on('error', (err) => {
    failure = err;
  });
  const fail = (err: unknown): OperatorError =>
    new OperatorError(
      `could not send the knock to ${target.host} (${target.address}) UDP port ${knockPort}: ${errorText(err)}` +
        (target.host === target.address ? '' : `; if ${target.host} has both IPv4 and IPv6 addresses, -4 or -6 picks the family that works from here`),
      EXIT.network,
    );
  return {
    get sent() {
      return sent;
    },
    send: (packet) =>
      new Promise((resolve, reject) => {
        if (failure !== undefined) return reject(fail(failure));
        socket.send(packet, knockPort, target.address, (err) => {
          if (err) return reject(fail(err));
          sent++;
          resolve();
        });
      }),
    close: () => socket.close(),
  };
}
