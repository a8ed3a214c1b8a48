// Protocol tests: committed vectors, round trips, every drop reason, length boundaries, property tests, server binding.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseAddress } from '../../src/protocol/address.ts';
import { concat, fromHex, serverSecretKey, toHex } from '../../src/protocol/bytes.ts';
import { checkKnock } from '../helpers/verdict.ts';
import type { CheckContext } from '../helpers/verdict.ts';
import { deriveKeyId, generateServerKeys, generateUserKeys, serverKeysFromSecret } from '../../src/protocol/keys.ts';
import { buildKnock, encodePayload, framePacket, signedMessage, systemRandom, tokenBytes } from '../../src/protocol/build.ts';
import { MAX_PACKET_BYTES, MIN_PACKET_BYTES, OUTER_FIXED_BYTES, WIRE } from '../../src/protocol/layout.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import { decodePayload } from '../../src/protocol/parse.ts';
import { loadSodium, sodium } from '../../src/protocol/sodium.ts';
import type { AuthorizedKey } from '../../src/server/verify.ts';
import { generateVectors, lookupFor } from '../vectors/vectors.ts';
import type { VectorFile } from '../vectors/vectors.ts';

const committed: VectorFile = JSON.parse(readFileSync(new URL('../../../test/vectors/knocks.json', import.meta.url), 'utf8'));
const hex = (s: string): Uint8Array => fromHex(s) ?? assert.fail(`bad hex ${s}`);

before(async () => {
  await loadSodium();
});

function contextFor(file: VectorFile): CheckContext {
  return { server: serverKeysFromSecret(serverSecretKey(hex(file.server.secretKey))), lookup: lookupFor(file.users), nowMs: file.nowMs, windowMs: file.windowMs };
}

describe('test vectors', () => {
  test('the committed vectors are exactly what the code generates', () => {
    assert.deepEqual(generateVectors(), committed);
  });

  test('every committed packet gets its committed verdict', () => {
    const ctx = contextFor(committed);
    for (const v of committed.vectors) {
      const r = checkKnock(hex(v.packet), ctx);
      assert.equal(r.ok, v.expect.ok, v.name);
      if (r.ok) {
        assert.equal(r.value.key.user, v.expect.user, v.name);
        assert.deepEqual(r.value.payload.access.map((a) => `${a.proto}/${a.port}`), v.expect.access, v.name);
      } else assert.equal(r.reason, v.expect.reason, v.name);
    }
  });

  test('the vectors cover every protocol drop reason and several valid knocks', () => {
    const reasons = new Set(committed.vectors.map((v) => v.expect.reason ?? 'ok'));
    for (const r of [DROP.badLength, DROP.oldVersion, DROP.badVersion, DROP.badToken, DROP.badMac, DROP.badBox, DROP.unknownKey, DROP.badSignature, DROP.revoked, DROP.badPayload, DROP.stale]) {
      assert.ok(reasons.has(r), `no vector for ${r}`);
    }
    assert.ok(committed.vectors.filter((v) => v.expect.ok).length >= 5);
  });

  test('the mac1 key in the vectors is derived as the spec says', () => {
    const spk = hex(committed.server.publicKey);
    const expected = sodium().crypto_generichash(32, concat(new TextEncoder().encode('sesame/v2/mac1-key'), spk), null);
    assert.equal(toHex(expected), committed.server.mac1Key);
  });

  test('each valid packet carries the token of its t\'s slot, derived as the spec says', () => {
    const mac1 = hex(committed.server.mac1Key);
    for (const v of committed.vectors.filter((x) => x.expect.ok)) {
      const slot = Math.floor((v.expect.timestampMs ?? 0) / 30_000);
      const message = concat(new TextEncoder().encode('sesame/v2/token'), Uint8Array.from(Buffer.from(slot.toString(16).padStart(16, '0'), 'hex')));
      const token = sodium().crypto_generichash(16, message, mac1).subarray(0, 4);
      assert.equal(v.packet.slice(8, 16), toHex(token), v.name);
    }
  });

  test('every valid payload re-encodes to the same bytes, and every refused payload was refused at the payload or later', () => {
    for (const v of committed.vectors) {
      if (v.payload === undefined) continue;
      const decoded = decodePayload(hex(v.payload));
      if (v.expect.ok) {
        assert.ok(decoded.ok, v.name);
        assert.equal(toHex(encodePayload(decoded.value, decoded.value.timestampMs, decoded.value.nonce)), v.payload, v.name);
      } else if (v.expect.reason === DROP.badPayload) assert.equal(decoded.ok, false, v.name);
    }
  });
});

/** A fresh server with alice authorized, for round trips. */
function world() {
  const server = generateServerKeys();
  const alice = generateUserKeys();
  const mallory = generateUserKeys();
  const keys = new Map<string, AuthorizedKey>();
  const id = deriveKeyId(alice.publicKey);
  keys.set(toHex(id), { keyId: id, publicKey: alice.publicKey, user: 'alice', revoked: false });
  const nowMs = 1_800_000_000_000;
  const ctx: CheckContext = { server, lookup: (k) => keys.get(toHex(k)), nowMs, windowMs: 30_000 };
  return { server, alice, mallory, ctx, nowMs };
}

describe('round trip', () => {
  test('build then check returns the same request, user and timestamp', () => {
    const w = world();
    const open = parseAddress('2001:db8::42');
    assert.ok(open);
    const request = { access: [{ proto: 'tcp' as const, port: 22 }, { proto: 'udp' as const, port: 51820 }], durationSeconds: 90, openAddress: open };
    const r = checkKnock(buildKnock(request, w.alice, w.server.publicKey, w.nowMs, systemRandom), w.ctx);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.value.key.user, 'alice');
    assert.equal(r.value.payload.timestampMs, w.nowMs);
    assert.deepEqual(r.value.payload.access, request.access);
    assert.equal(r.value.payload.durationSeconds, 90);
    assert.equal(r.value.payload.openAddress?.text, '2001:db8::42');
  });

  test('two knocks with the same request differ (fresh nonce and ephemeral key)', () => {
    const w = world();
    const a = buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, w.alice, w.server.publicKey, w.nowMs, systemRandom);
    const b = buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, w.alice, w.server.publicKey, w.nowMs, systemRandom);
    assert.notEqual(toHex(a), toHex(b));
  });

  test('a knock for server A is refused by server B that knows the same user', () => {
    const w = world();
    const b = { ...w.ctx, server: generateServerKeys() };
    const packet = buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, w.alice, w.server.publicKey, w.nowMs, systemRandom);
    assert.ok(checkKnock(packet, w.ctx).ok);
    const r = checkKnock(packet, b);
    assert.equal(r.ok ? 'accepted' : r.reason, DROP.badToken);
    // With B's token in place of A's (the token is public to B's users), mac1 still names A's key.
    const retokened = concat(packet.subarray(0, 4), tokenBytes(b.server.publicKey, w.nowMs), packet.subarray(8));
    const m = checkKnock(retokened, b);
    assert.equal(m.ok ? 'accepted' : m.reason, DROP.badMac);
    // Even re-sealed to B by someone who saw the plaintext, A's signature does not verify at B.
    const payload = encodePayload({ access: [{ proto: 'tcp', port: 22 }] }, w.nowMs, systemRandom(16));
    const inner = concat(deriveKeyId(w.alice.publicKey), sodium().crypto_sign_detached(signedMessage(w.server.publicKey, payload), w.alice.secretKey), payload);
    const resealed = checkKnock(framePacket(inner, b.server.publicKey, w.nowMs, systemRandom), b);
    assert.equal(resealed.ok ? 'accepted' : resealed.reason, DROP.badSignature);
  });
});

describe('length boundaries', () => {
  test('outer length: MIN-1 and MAX+1 are bad_length, MIN and MAX get past the length check', () => {
    const w = world();
    const verdict = (n: number): string => {
      const r = checkKnock(concat(WIRE.header, tokenBytes(w.server.publicKey, w.nowMs), new Uint8Array(Math.max(0, n - WIRE.headerBytes - WIRE.tokenBytes))).subarray(0, n), w.ctx);
      return r.ok ? 'ok' : r.reason;
    };
    assert.equal(verdict(MIN_PACKET_BYTES - 1), DROP.badLength);
    assert.equal(verdict(MIN_PACKET_BYTES), DROP.badMac);
    assert.equal(verdict(MAX_PACKET_BYTES), DROP.badMac);
    assert.equal(verdict(MAX_PACKET_BYTES + 1), DROP.badLength);
    assert.equal(verdict(0), DROP.badLength);
  });

  test('payload length: one byte under the minimum is bad_length, the minimum and maximum reach the payload check', () => {
    const w = world();
    const signedInner = (payloadBytes: Uint8Array): Uint8Array =>
      concat(deriveKeyId(w.alice.publicKey), sodium().crypto_sign_detached(signedMessage(w.server.publicKey, payloadBytes), w.alice.secretKey), payloadBytes);
    const verdict = (payloadLength: number): string => {
      const r = checkKnock(framePacket(signedInner(new Uint8Array(payloadLength).fill(0xc0)), w.server.publicKey, w.nowMs, systemRandom), w.ctx);
      return r.ok ? 'ok' : r.reason;
    };
    assert.equal(verdict(WIRE.minPayloadBytes - 1), DROP.badLength);
    assert.equal(verdict(WIRE.minPayloadBytes), DROP.badPayload);
    assert.equal(verdict(WIRE.maxPayloadBytes), DROP.badPayload);
    assert.equal(verdict(WIRE.maxPayloadBytes + 1), DROP.badLength);
  });

  test('removing or adding one byte at any field boundary of a valid knock is refused', () => {
    const w = world();
    const packet = buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, w.alice, w.server.publicKey, w.nowMs, systemRandom);
    const boundaries = [0, 3, WIRE.headerBytes, WIRE.headerBytes + 32, WIRE.headerBytes + 48, OUTER_FIXED_BYTES - WIRE.mac1Bytes, packet.length - WIRE.mac1Bytes, packet.length];
    for (const at of boundaries) {
      const removed = at < packet.length ? [concat(packet.subarray(0, at), packet.subarray(at + 1))] : [];
      for (const mutated of [...removed, concat(packet.subarray(0, at), Uint8Array.of(0), packet.subarray(at))]) {
        const r = checkKnock(mutated, w.ctx);
        assert.equal(r.ok, false, `accepted with a change at byte ${at}`);
      }
    }
  });
});

describe('properties', () => {
  test('random bytes never throw and are never accepted', () => {
    const w = world();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), (bytes, withHeader) => {
        const packet = withHeader ? concat(WIRE.header, bytes) : bytes;
        assert.equal(checkKnock(packet, w.ctx).ok, false);
      }),
      { numRuns: 3000 },
    );
  });

  test('mutated valid knocks never throw and only the unmodified packet is accepted', () => {
    const w = world();
    const packet = buildKnock({ access: [{ proto: 'tcp', port: 22 }], durationSeconds: 60 }, w.alice, w.server.publicKey, w.nowMs, systemRandom);
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 }), fc.integer({ min: -20, max: 20 }), (flips, resize) => {
        const m = Uint8Array.from(packet);
        for (const f of flips) {
          const i = f.at % m.length;
          m[i] = (m[i] ?? 0) ^ f.xor;
        }
        const sized = resize < 0 ? m.subarray(0, m.length + resize) : concat(m, new Uint8Array(resize));
        assert.equal(checkKnock(sized, w.ctx).ok, false);
      }),
      { numRuns: 3000 },
    );
  });

  test('inner mutations behind a correct mac1 and box (attacker knows the server key) are never accepted', () => {
    const w = world();
    const payload = encodePayload({ access: [{ proto: 'tcp', port: 22 }] }, w.nowMs, systemRandom(16));
    const inner = concat(deriveKeyId(w.alice.publicKey), sodium().crypto_sign_detached(signedMessage(w.server.publicKey, payload), w.alice.secretKey), payload);
    assert.ok(checkKnock(framePacket(inner, w.server.publicKey, w.nowMs, systemRandom), w.ctx).ok);
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const m = Uint8Array.from(inner);
        const i = at % m.length;
        m[i] = (m[i] ?? 0) ^ xor;
        assert.equal(checkKnock(framePacket(m, w.server.publicKey, w.nowMs, systemRandom), w.ctx).ok, false);
      }),
      { numRuns: 1500 },
    );
  });

  test('arbitrary payloads signed by an authorized key never throw; accepted ones decode to valid requests', () => {
    const w = world();
    const value = fc.letrec((tie) => ({
      any: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.double(), fc.string(), fc.uint8Array({ maxLength: 20 }), fc.boolean(), fc.constant(null), fc.array(tie('any'), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 3 }), tie('any'), { maxKeys: 4 })),
    })).any;
    const payloads = fc.oneof(
      fc.uint8Array({ minLength: WIRE.minPayloadBytes, maxLength: WIRE.maxPayloadBytes }),
      fc.record({ t: fc.oneof(fc.constant(BigInt(w.nowMs)), value), n: fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), value), a: fc.oneof(fc.constant([['tcp', 22]]), value) }, { requiredKeys: [] }).map((o) => encodePayloadRaw(o)),
    );
    fc.assert(
      fc.property(payloads, (payload) => {
        if (payload.length < WIRE.minPayloadBytes || payload.length > WIRE.maxPayloadBytes) return;
        const inner = concat(deriveKeyId(w.alice.publicKey), sodium().crypto_sign_detached(signedMessage(w.server.publicKey, payload), w.alice.secretKey), payload);
        const r = checkKnock(framePacket(inner, w.server.publicKey, w.nowMs, systemRandom), w.ctx);
        if (r.ok) {
          assert.ok(r.value.payload.access.length >= 1);
          for (const a of r.value.payload.access) assert.ok(a.port >= 1 && a.port <= 65535);
        } else assert.ok([DROP.badPayload, DROP.stale].includes(r.reason as 'bad_payload' | 'stale'), r.reason);
      }),
      { numRuns: 1500 },
    );
  });
});

import { Packr } from 'msgpackr';
const rawPackr = new Packr({ useRecords: false, variableMapSize: true });
function encodePayloadRaw(o: unknown): Uint8Array {
  return rawPackr.pack(o);
}
