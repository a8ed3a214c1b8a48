// Client: relay a byte stream pair (ssh's ProxyCommand stdin/stdout) over the connection that proved the port open. Binary-safe; parses nothing.
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { EXIT } from '../errors.ts';
import { errorText } from './send.ts';

/**
 * Binary-safe relay between a byte stream pair (stdin/stdout for ssh's ProxyCommand) and the socket.
 * input's end half-closes the socket's write side; the socket's close ends the relay. Resolves to an exit code.
 */
export function relay(socket: Socket, input: Readable, output: Writable, log: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    let failure: string | undefined;
    socket.setNoDelay(true);
    socket.on('error', (err) => {
      failure ??= `connection to ${socket.remoteAddress ?? '?'} port ${socket.remotePort ?? '?'} failed: ${errorText(err)}`;
    });
    output.on('error', (err) => {
      // The reader (ssh) went away: nothing left to relay to.
      failure ??= `cannot write to stdout: ${errorText(err)}`;
      socket.destroy();
    });
    input.on('error', (err) => {
      failure ??= `cannot read stdin: ${errorText(err)}`;
      socket.destroy();
    });
    socket.on('close', () => {
      input.unpipe(socket);
      // stdin keeps the event loop alive; the relay is over once the server side is gone.
      input.destroy();
      if (failure !== undefined) log(failure);
      resolve(failure === undefined ? EXIT.ok : EXIT.network);
    });
    socket.pipe(output, { end: false });
    input.pipe(socket);
  });
}
