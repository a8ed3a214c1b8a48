// Capture from dgram sockets bound to the knock port, one per listen address. Never sends a byte. Source addresses come from the OS and are normalised (::ffff:a.b.c.d -> a.b.c.d).
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { parseAddress } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import type { Capture, OnPacket } from './capture.ts';
import { EXIT, OperatorError } from '../errors.ts';
import { CAPTURE } from '../limits.ts';


export class UdpCapture implements Capture {
  private readonly sockets: Socket[] = [];
  private readonly listen: readonly Address[];
  private readonly port: number;

  constructor(listen: readonly Address[], port: number) {
    this.listen = listen;
    this.port = port;
  }

  async start(onPacket: OnPacket): Promise<void> {
    for (const address of this.listen) this.sockets.push(await this.bind(address, onPacket));
  }

  private bind(address: Address, onPacket: OnPacket): Promise<Socket> {
    // ipv6Only: "::" must not also take IPv4 (that would deliver each IPv4 knock twice when 0.0.0.0 is listed too).
    const socket = address.family === 4
      ? createSocket({ type: 'udp4', recvBufferSize: CAPTURE.udpReceiveBufferBytes })
      : createSocket({ type: 'udp6', ipv6Only: true, recvBufferSize: CAPTURE.udpReceiveBufferBytes });
    return new Promise((resolve, reject) => {
      socket.once('error', (err) => {
        reject(new OperatorError(`cannot listen on UDP ${address.family === 6 ? `[${address.text}]` : address.text}:${this.port}: ${err.message}`, EXIT.network));
      });
      socket.on('message', (msg, rinfo) => {
        const source = parseAddress(rinfo.address);
        if (source !== undefined) onPacket(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), source);
      });
      socket.bind({ address: address.text, port: this.port, exclusive: true }, () => {
        socket.removeAllListeners('error');
        socket.on('error', () => {
          // A receive error on a connectionless socket concerns one datagram; the socket keeps working.
        });
        resolve(socket);
      });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.sockets.length = 0;
  }
}
