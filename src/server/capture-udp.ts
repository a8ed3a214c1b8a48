// Capture from dgram sockets bound to the knock port, one per listen address. Never sends a byte. Source addresses come from the OS; an IPv4-mapped IPv6 source (::ffff:a.b.c.d on the IPv6-only socket) is refused, as in pcap mode.
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { parseAddress } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import type { Capture, OnPacket } from './capture.ts';
import { EXIT, OperatorError } from '../errors.ts';
import { CAPTURE } from '../limits.ts';
import { DROP } from '../protocol/reasons.ts';
import type { DropReason } from '../protocol/reasons.ts';

const MAPPED = /^::ffff:/i;

export class UdpCapture implements Capture {
  private readonly sockets: Socket[] = [];
  private readonly listen: readonly Address[];
  private readonly port: number;
  private readonly onDrop: (reason: DropReason) => void;

  constructor(listen: readonly Address[], port: number, onDrop: (reason: DropReason) => void = () => {}) {
    this.listen = listen;
    this.port = port;
    this.onDrop = onDrop;
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
        // An IPv6 packet must not pose as an IPv4 address to the rate limiter, `from` checks, grants and logs.
        const source = rinfo.family === 'IPv6' && MAPPED.test(rinfo.address) ? undefined : parseAddress(rinfo.address);
        if (source === undefined) this.onDrop(DROP.badSource);
        else onPacket(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), source);
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
