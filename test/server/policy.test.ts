// Policy: ports, source CIDRs, address override and duration caps, each rule refusing what it should.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress, parseCidr } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { decide } from '../../src/server/policy.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import type { UserPolicy } from '../../src/server/users.ts';
import type { Payload } from '../../src/protocol/parse.ts';

const addr = (t: string): Address => parseAddress(t) ?? assert.fail(t);
const bounds = { defaultDurationSeconds: 30, maxDurationSeconds: 300 };
const user: UserPolicy = { name: 'alice', ports: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }], maxDurationSeconds: 120, from: [], mayOpenOtherAddress: false };
const payload = (extra: Partial<Payload> = {}): Payload => ({ timestampMs: 0, nonce: new Uint8Array(16), access: [{ proto: 'tcp', port: 22 }], ...extra });
const verdict = (p: Payload, u: UserPolicy = user, source = '10.0.0.2'): string => {
  const r = decide(p, addr(source), u, bounds);
  return r.ok ? 'ok' : r.reason;
};

test('allowed ports pass, anything else is port_not_allowed', () => {
  assert.equal(verdict(payload()), 'ok');
  assert.equal(verdict(payload({ access: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }] })), 'ok');
  assert.equal(verdict(payload({ access: [{ proto: 'udp', port: 22 }] })), DROP.portNotAllowed);
  assert.equal(verdict(payload({ access: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 23 }] })), DROP.portNotAllowed, 'one bad port refuses the whole knock');
});

test('source CIDRs', () => {
  const u = { ...user, from: [parseCidr('10.0.0.0/24') ?? assert.fail(), parseCidr('2001:db8::/32') ?? assert.fail()] };
  assert.equal(verdict(payload(), u, '10.0.0.9'), 'ok');
  assert.equal(verdict(payload(), u, '2001:db8::5'), 'ok');
  assert.equal(verdict(payload(), u, '10.0.1.9'), DROP.sourceNotAllowed);
  assert.equal(verdict(payload(), u, 'fd00::5'), DROP.sourceNotAllowed);
});

test('opening another address needs permission; naming your own source does not', () => {
  assert.equal(verdict(payload({ openAddress: addr('198.51.100.7') })), DROP.addressNotAllowed);
  assert.equal(verdict(payload({ openAddress: addr('10.0.0.2') })), 'ok');
  const r = decide(payload({ openAddress: addr('198.51.100.7') }), addr('10.0.0.2'), { ...user, mayOpenOtherAddress: true }, bounds);
  assert.ok(r.ok);
  assert.equal(r.value[0]?.address.text, '198.51.100.7');
});

test('duration: default, user cap, server cap; grants carry it', () => {
  const ttl = (p: Payload, u: UserPolicy = user): number | undefined => {
    const r = decide(p, addr('10.0.0.2'), u, bounds);
    return r.ok ? r.value[0]?.ttlSeconds : -1;
  };
  assert.equal(ttl(payload()), 30);
  assert.equal(ttl(payload({ durationSeconds: 60 })), 60);
  assert.equal(ttl(payload({ durationSeconds: 86_400 })), 120, 'user cap');
  assert.equal(ttl(payload({ durationSeconds: 86_400 }), { ...user, maxDurationSeconds: undefined }), 300, 'server cap');
  assert.equal(ttl(payload({ durationSeconds: 86_400 }), { ...user, maxDurationSeconds: 10_000 }), 300, 'server cap beats a larger user cap');
});

test('`from` bounds the address a knock may open, not only the one it comes from', () => {
  const u = { ...user, mayOpenOtherAddress: true, from: [parseCidr('10.0.0.0/24') ?? assert.fail(), parseCidr('198.51.100.0/24') ?? assert.fail()] };
  assert.equal(verdict(payload({ openAddress: addr('198.51.100.7') }), u), 'ok', 'another address inside from');
  assert.equal(verdict(payload({ openAddress: addr('203.0.113.9') }), u), DROP.addressNotAllowed, 'an address outside from');
  assert.equal(verdict(payload({ openAddress: addr('2001:db8::1') }), u), DROP.addressNotAllowed, 'another family outside from');
  assert.equal(verdict(payload({ openAddress: addr('203.0.113.9') }), { ...u, from: [] }), 'ok', 'no from: any address, as before');
});
