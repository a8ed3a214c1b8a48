// Sending knocks (send.ts) with real UDP sockets on loopback only: exact bytes arrive, sends are counted, a failed send is a network error; resolving IP literals and the family check.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { test } from 'node:test';
import { EXIT, OperatorError } from '../../src/errors.ts';
import { openSender, resolveHost } from '../../src/client/send.ts';
import type { Target } from '../../src/client/send.ts';

/** No test here waits forever: a hang is a failure. */
const TEST_MS = 30_000;

/** A UDP receiver on a loopback address; next() resolves with the next datagram and where it came from. */
async function receiver(type: 'udp4' | 'udp6', address: string): Promise<{ port: number; next(): Promise<{ bytes: Buffer; from: string }>; close(): void }> {
  const socket: Socket = createSocket(type);
  const queue: { bytes: Buffer; from: string }[] = [];
  const waiting: ((m: { bytes: Buffer; from: string }) => void)[] = [];
  socket.on('message', (bytes, rinfo) => {
    const m = { bytes, from: rinfo.address };
    const w = waiting.shift();
    if (w === undefined) queue.push(m);
    else w(m);
  });
  await new Promise<void>((resolve) => socket.bind({ address, port: 0 }, resolve));
  return {
    port: socket.address().port,
    next: () => new Promise((resolve) => {
      const m = queue.shift();
      if (m === undefined) waiting.push(resolve);
      else resolve(m);
    }),
    close: () => socket.close(),
  };
}

for (const [type, address] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
  test(`openSender over ${type}: each knock arrives byte for byte, and sent counts them`, { timeout: TEST_MS }, async () => {
    const rx = await receiver(type, address);
    const target: Target = { host: 'server.test', address, family: type === 'udp4' ? 4 : 6 };
    const sender = openSender(target, rx.port);
    try {
      const first = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
      const second = Uint8Array.of(0x73, 0x65, 0x73, 0x01, 0, 0xff);
      assert.equal(sender.sent, 0);
      await sender.send(first);
      await sender.send(second);
      assert.equal(sender.sent, 2);
      const a = await rx.next();
      const b = await rx.next();
      assert.deepEqual(new Uint8Array(a.bytes), first);
      assert.deepEqual(new Uint8Array(b.bytes), second);
      assert.equal(a.from, address, 'sent from the loopback address, to the receiver only');
    } finally {
      sender.close();
      rx.close();
    }
  });
}

test('a send that fails is a network error naming the target, and is not counted', { timeout: TEST_MS }, async () => {
  // An IPv6 address on an IPv4 socket fails locally (EINVAL): nothing leaves the machine.
  const sender = openSender({ host: 'server.test', address: '::1', family: 4 }, 62201);
  try {
    await assert.rejects(sender.send(Uint8Array.of(1, 2, 3)), (err: unknown) => {
      assert.ok(err instanceof OperatorError);
      assert.equal(err.exitCode, EXIT.network);
      assert.match(err.message, /^could not send the knock to server\.test \(::1\) UDP port 62201: EINVAL; if server\.test has both IPv4 and IPv6 addresses, -4 or -6 picks the family that works from here$/);
      return true;
    });
    assert.equal(sender.sent, 0);
  } finally {
    sender.close();
  }
});

test('resolveHost: IP literals resolve to themselves with their family; a family that does not match is a usage error', { timeout: TEST_MS }, async () => {
  // Literals only: a name would be a DNS query, and these tests send nothing beyond loopback.
  assert.deepEqual(await resolveHost('127.0.0.1', undefined), { host: '127.0.0.1', address: '127.0.0.1', family: 4 });
  assert.deepEqual(await resolveHost('::1', 6), { host: '::1', address: '::1', family: 6 });
  await assert.rejects(resolveHost('127.0.0.1', 6), (err: unknown) => {
    assert.ok(err instanceof OperatorError);
    assert.equal(err.exitCode, EXIT.usage);
    assert.match(err.message, /^127\.0\.0\.1 is an IPv4 address, but -6 \(or the profile's "family"\) asks for IPv6$/);
    return true;
  });
});
