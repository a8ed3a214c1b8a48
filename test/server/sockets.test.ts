// Reading established TCP connections from /proc/net/tcp{,6}: kernel byte order, IPv6 and v4-mapped peers, states other than established skipped, malformed lines ignored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProcNetTcp } from '../../src/server/sockets.ts';

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

test('IPv4: established connections with their peer and ports; listening and other states skipped', () => {
  const text = HEADER
    + '   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n'
    + '   1: 0101A8C0:0016 0201A8C0:C350 01 00000000:00000000 02:0004F1D8 00000000     0        0 2 2 0 20 4 30 10 -1\n'
    + '   2: 0101A8C0:0016 0301A8C0:C351 06 00000000:00000000 03:00000F1D 00000000     0        0 0 3 0\n'
    + '   3: garbage\n';
  assert.deepEqual(parseProcNetTcp(text, 4).map((c) => [c.remote.text, c.remotePort, c.localPort]), [['192.168.1.2', 50000, 22]]);
});

test('IPv6: each 32-bit word in host order; a v4-mapped peer is the IPv4 connection it is', () => {
  const text = HEADER
    // fd00::1 port 22 <- fd00::2 port 40000
    + '   0: 000000FD000000000000000001000000:0016 000000FD000000000000000002000000:9C40 01 00000000:00000000 00:00000000 00000000 0 0 1 1 0\n'
    // ::ffff:10.0.0.1 port 22 <- ::ffff:10.0.0.2 port 40001
    + '   1: 0000000000000000FFFF00000100000A:0016 0000000000000000FFFF00000200000A:9C41 01 00000000:00000000 00:00000000 00000000 0 0 1 1 0\n'
    + '   2: 000000FD00000000000000000100000:0016 000000FD000000000000000002000000:9C40 01 truncated address\n';
  assert.deepEqual(parseProcNetTcp(text, 16).map((c) => [c.remote.family, c.remote.text, c.remotePort, c.localPort]), [[6, 'fd00::2', 40000, 22], [4, '10.0.0.2', 40001, 22]]);
});
