// The payload decoder's address rule: an address to open is 4 bytes (IPv4) or a real IPv6 address; the IPv4-mapped form ::ffff:a.b.c.d is refused, so one address cannot be named two ways.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAddress } from '../../src/protocol/address.ts';
import { encodePayload } from '../../src/protocol/build.ts';
import { decodePayload } from '../../src/protocol/parse.ts';
import { DROP } from '../../src/protocol/reasons.ts';

const access = [{ proto: 'tcp', port: 22 }] as const;
const nonce = new Uint8Array(16);

test('an IPv4 or IPv6 address to open decodes; the IPv4-mapped IPv6 form is bad_payload', () => {
  const v4 = decodePayload(encodePayload({ access, openAddress: parseAddress('198.51.100.7') ?? assert.fail() }, 1, nonce));
  assert.ok(v4.ok && v4.value.openAddress?.family === 4 && v4.value.openAddress.text === '198.51.100.7');
  const v6 = decodePayload(encodePayload({ access, openAddress: parseAddress('2001:db8::7') ?? assert.fail() }, 1, nonce));
  assert.ok(v6.ok && v6.value.openAddress?.text === '2001:db8::7');
  const mappedBytes = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7);
  const mapped = decodePayload(encodePayload({ access, openAddress: { family: 6, bytes: mappedBytes, text: '::ffff:198.51.100.7' } }, 1, nonce));
  assert.equal(mapped.ok ? 'ok' : mapped.reason, DROP.badPayload);
  assert.equal(mapped.ok ? '' : mapped.detail?.['why'], 'mapped address');
});

test('the payload has one encoding: the builder sorts and deduplicates access, the decoder refuses any other byte string', () => {
  const many = [{ proto: 'udp', port: 53 }, { proto: 'tcp', port: 443 }, { proto: 'tcp', port: 22 }, { proto: 'tcp', port: 22 }] as const;
  const bytes = encodePayload({ access: many, durationSeconds: 200, confirmPort: 62202 }, 1_790_000_000_000, nonce);
  const decoded = decodePayload(bytes);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.value.access, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }, { proto: 'udp', port: 53 }]);
  assert.equal(decoded.value.confirmPort, 62202);
  // Every integer in its shortest form: 200 is cc c8, 62202 cd f2 fa, the timestamp cf.
  assert.ok(Buffer.from(bytes).toString('hex').includes('a164ccc8'));
  assert.ok(Buffer.from(bytes).toString('hex').includes('a163cdf2fa'));
  const why = (b: Uint8Array): string => { const r = decodePayload(b); return r.ok ? 'ok' : String(r.detail?.['why']); };
  // The same values written another way: uint16 for 200 (cd 00 c8) is non-canonical.
  const longer = Buffer.from(Buffer.from(bytes).toString('hex').replace('a164ccc8', 'a164cd00c8'), 'hex');
  assert.equal(why(longer), 'non-canonical');
  // A port as a float64 22.0 is refused (v1 accepted it).
  const floatPort = Buffer.from(Buffer.from(bytes).toString('hex').replace('a374637016', 'a3746370cb4036000000000000'), 'hex');
  assert.notEqual(why(floatPort), 'ok');
});

test('small timestamps take the short forms, and still decode to the same value', () => {
  for (const t of [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    const r = decodePayload(encodePayload({ access }, t, nonce));
    assert.ok(r.ok && r.value.timestampMs === t, String(t));
  }
});
