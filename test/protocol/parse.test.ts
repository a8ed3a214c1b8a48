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
