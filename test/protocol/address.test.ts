// Address parsing, canonical text, CIDR matching and rate-limit keys.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressFromBytes, cidrContains, parseAddress, parseCidr, rateKey } from '../../src/protocol/address.ts';

const a = (t: string) => parseAddress(t) ?? assert.fail(`not an address: ${t}`);
const c = (t: string) => parseCidr(t) ?? assert.fail(`not a cidr: ${t}`);

test('canonical text', () => {
  const cases: [string, string, 4 | 6][] = [
    ['10.0.0.1', '10.0.0.1', 4],
    ['::ffff:10.1.2.3', '10.1.2.3', 4],
    ['::FFFF:0a01:0203', '10.1.2.3', 4],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6],
    ['fd00::', 'fd00::', 6],
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3', 6],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221', 6],
  ];
  for (const [input, text, family] of cases) {
    const got = a(input);
    assert.equal(got.text, text, input);
    assert.equal(got.family, family, input);
    assert.equal(got.bytes.length, family === 4 ? 4 : 16);
  }
});

test('refuses non-addresses', () => {
  for (const t of ['', '10.0.0', '10.0.0.256', 'fe80::1%eth0', 'example.com', '1::2::3', ' 10.0.0.1']) assert.equal(parseAddress(t), undefined, t);
  assert.equal(addressFromBytes(new Uint8Array(5)), undefined);
});

test('bytes round trip, IPv4-mapped folded', () => {
  assert.equal(addressFromBytes(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1))?.text, '192.0.2.1');
  assert.equal(addressFromBytes(a('2001:db8::7').bytes)?.text, '2001:db8::7');
});

test('cidr contains', () => {
  assert.ok(cidrContains(c('10.0.0.0/8'), a('10.200.1.1')));
  assert.ok(!cidrContains(c('10.0.0.0/8'), a('11.0.0.1')));
  assert.ok(cidrContains(c('10.1.2.3'), a('10.1.2.3')));
  assert.ok(!cidrContains(c('10.1.2.3'), a('10.1.2.4')));
  assert.ok(cidrContains(c('10.1.2.0/23'), a('10.1.3.255')));
  assert.ok(!cidrContains(c('10.1.2.0/24'), a('10.1.3.0')));
  assert.ok(cidrContains(c('2001:db8::/32'), a('2001:db8:ffff::1')));
  assert.ok(!cidrContains(c('2001:db8::/32'), a('2001:db9::1')));
  assert.ok(!cidrContains(c('0.0.0.0/0'), a('::1')), 'families never match across');
  assert.ok(cidrContains(c('0.0.0.0/0'), a('203.0.113.9')));
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/8/8', 'x/8', '10.0.0.0/0x8']) assert.equal(parseCidr(bad), undefined, bad);
});

test('rate key: IPv4 per address, IPv6 per /64', () => {
  assert.equal(rateKey(a('10.0.0.1')), '10.0.0.1');
  assert.equal(rateKey(a('2001:db8:1:2:aaaa::1')), rateKey(a('2001:db8:1:2:bbbb::2')));
  assert.notEqual(rateKey(a('2001:db8:1:2::1')), rateKey(a('2001:db8:1:3::1')));
});
