// Deterministic protocol test vectors: fixed keys, fixed clock, seeded randomness. generate.ts writes them to knocks.json; test/vectors.test.ts checks code and file agree.
import { concat, toHex, userPublicKey, utf8 } from '../../src/protocol/bytes.ts';
import type { UserPublicKey } from '../../src/protocol/bytes.ts';
import { checkKnock } from '../helpers/verdict.ts';
import type { CheckContext } from '../helpers/verdict.ts';
import { deriveKeyId, serverKeysFromSecret, userKeysFromSeed } from '../../src/protocol/keys.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { serverSecretKey } from '../../src/protocol/bytes.ts';
import { buildKnock, encodePayload, framePacket, signedMessage } from '../../src/protocol/build.ts';
import type { KnockRequest, RandomBytes } from '../../src/protocol/build.ts';
import { parseAddress } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { MAX_PACKET_BYTES, MIN_PACKET_BYTES, WIRE } from '../../src/protocol/layout.ts';
import { sodium } from '../../src/protocol/sodium.ts';
import type { AuthorizedKey } from '../../src/server/verify.ts';
import { Packr } from 'msgpackr';

export const NOW_MS = 1_790_000_000_000;
export const WINDOW_MS = 30_000;

export interface VectorUser {
  name: string;
  seed: string;
  publicKey: string;
  keyId: string;
  revoked: boolean;
}

export interface Expect {
  ok: boolean;
  reason?: string;
  user?: string;
  timestampMs?: number;
  nonce?: string;
  access?: string[];
  durationSeconds?: number;
  openAddress?: string;
}

export interface Vector {
  name: string;
  packet: string;
  expect: Expect;
}

export interface VectorFile {
  about: string;
  randomness: string;
  nowMs: number;
  windowMs: number;
  server: { secretKey: string; publicKey: string; mac1Key: string };
  otherServer: { secretKey: string; publicKey: string };
  users: VectorUser[];
  vectors: Vector[];
}

/** Randomness for vectors: block i of a label is BLAKE2b-512(label || u32be(i)), consumed in order. */
export function seededRandom(label: string): RandomBytes {
  let pool: Uint8Array = new Uint8Array(0);
  let counter = 0;
  return (n) => {
    while (pool.length < n) {
      const block = sodium().crypto_generichash(64, concat(utf8(label), Uint8Array.of(counter >>> 24, (counter >>> 16) & 0xff, (counter >>> 8) & 0xff, counter & 0xff)), null);
      counter++;
      pool = concat(pool, block);
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
}

const fixed = (label: string): Uint8Array => sodium().crypto_generichash(32, utf8(`sesame test vector key: ${label}`), null);

interface Fixture {
  server: ServerKeys;
  other: ServerKeys;
  users: Map<string, { keys: UserKeys; revoked: boolean }>;
}

function fixture(): Fixture {
  const users = new Map<string, { keys: UserKeys; revoked: boolean }>();
  users.set('alice', { keys: userKeysFromSeed(fixed('alice')), revoked: false });
  users.set('bob', { keys: userKeysFromSeed(fixed('bob')), revoked: false });
  users.set('carol-revoked', { keys: userKeysFromSeed(fixed('carol')), revoked: true });
  return { server: serverKeysFromSecret(serverSecretKey(fixed('server'))), other: serverKeysFromSecret(serverSecretKey(fixed('other server'))), users };
}

/** The authorized keys of the fixture (mallory is deliberately absent). */
export function lookupFor(users: readonly VectorUser[]): CheckContext['lookup'] {
  const byId = new Map<string, AuthorizedKey>();
  for (const u of users) {
    const publicKey: UserPublicKey = userPublicKey(Uint8Array.from(Buffer.from(u.publicKey, 'hex')));
    const keyId = deriveKeyId(publicKey);
    byId.set(toHex(keyId), { keyId, publicKey, user: u.name, revoked: u.revoked });
  }
  return (id) => byId.get(toHex(id));
}

function expectFrom(packet: Uint8Array, ctx: CheckContext): Expect {
  const r = checkKnock(packet, ctx);
  if (!r.ok) return { ok: false, reason: r.reason };
  const p = r.value.payload;
  return {
    ok: true,
    user: r.value.key.user,
    timestampMs: p.timestampMs,
    nonce: toHex(p.nonce),
    access: p.access.map((a) => `${a.proto}/${a.port}`),
    ...(p.durationSeconds === undefined ? {} : { durationSeconds: p.durationSeconds }),
    ...(p.openAddress === undefined ? {} : { openAddress: p.openAddress.text }),
  };
}

function addr(text: string): Address {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(text);
  return a;
}

export function generateVectors(): VectorFile {
  const fx = fixture();
  const user = (name: string): UserKeys => {
    const u = fx.users.get(name);
    if (u === undefined) throw new Error(name);
    return u.keys;
  };
  const alice = user('alice');
  const mallory = userKeysFromSeed(fixed('mallory'));
  const rnd = seededRandom('sesame/v1 test vectors');
  const spk = fx.server.publicKey;
  const vectors: { name: string; packet: Uint8Array }[] = [];
  const add = (name: string, packet: Uint8Array): void => {
    vectors.push({ name, packet });
  };
  const ssh: KnockRequest = { access: [{ proto: 'tcp', port: 22 }] };
  /** A knock from raw payload bytes, signed by `signer` and labelled with `idOf`'s key id. */
  const rawKnock = (payloadBytes: Uint8Array, signer: UserKeys, idOf: UserKeys = signer, server = spk): Uint8Array =>
    framePacket(concat(deriveKeyId(idOf.publicKey), sodium().crypto_sign_detached(signedMessage(server, payloadBytes), signer.secretKey), payloadBytes), spk, rnd);
  const nonce = (): Uint8Array => rnd(WIRE.nonceBytes);
  const packr = new Packr({ useRecords: false, variableMapSize: true });

  add('valid: alice asks for tcp/22', buildKnock(ssh, alice, spk, NOW_MS, rnd));
  add('valid: bob asks for tcp/22 and udp/51820 for 120 s', buildKnock({ access: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }], durationSeconds: 120 }, user('bob'), spk, NOW_MS - 1_000, rnd));
  add('valid: alice asks to open 198.51.100.7 (NAT)', buildKnock({ access: [{ proto: 'tcp', port: 443 }], openAddress: addr('198.51.100.7') }, alice, spk, NOW_MS + 2_000, rnd));
  add('valid: alice asks to open 2001:db8::7 for 1 s', buildKnock({ access: [{ proto: 'tcp', port: 2222 }], durationSeconds: 1, openAddress: addr('2001:db8::7') }, alice, spk, NOW_MS, rnd));
  add('valid: timestamp exactly at the window edge (-30 s)', buildKnock(ssh, alice, spk, NOW_MS - WINDOW_MS, rnd));
  add('valid: 16 access entries (the maximum)', buildKnock({ access: Array.from({ length: 16 }, (_, i) => ({ proto: 'udp' as const, port: 60000 + i })) }, alice, spk, NOW_MS, rnd));
  add('valid: timestamp as uint64 instead of int64', rawKnock(concat(Uint8Array.of(0x83, 0xa1, 0x74, 0xcf), bigEndian64(NOW_MS), Uint8Array.of(0xa1, 0x6e, 0xc4, 0x10), nonce(), Uint8Array.of(0xa1, 0x61, 0x91, 0x92, 0xa3, 0x74, 0x63, 0x70, 0x16)), alice));

  const good = buildKnock(ssh, alice, spk, NOW_MS, rnd);
  add('bad_length: empty', new Uint8Array(0));
  add('bad_length: one byte under the minimum', good.subarray(0, MIN_PACKET_BYTES - 1));
  add('bad_length: one byte over the maximum', new Uint8Array(MAX_PACKET_BYTES + 1).fill(0x73));
  add('bad_version: version byte 2', Uint8Array.from(good, (b, i) => (i === 3 ? 2 : b)));
  add('bad_version: wrong magic', Uint8Array.from(good, (b, i) => (i === 0 ? 0x53 : b)));
  add('bad_mac: last byte of mac1 flipped', Uint8Array.from(good, (b, i) => (i === good.length - 1 ? b ^ 1 : b)));
  add('bad_mac: sealed box byte flipped (mac1 covers it)', Uint8Array.from(good, (b, i) => (i === 40 ? b ^ 0x80 : b)));
  const forOther = buildKnock(ssh, alice, fx.other.publicKey, NOW_MS, rnd);
  add('bad_mac: knock built for another server', forOther);
  const junkBox = rnd(good.length - 20);
  const junkInput = concat(WIRE.header, junkBox);
  add('bad_box: right mac1 over random box bytes', concat(junkInput, sodium().crypto_generichash(16, junkInput, fx.server.mac1Key)));
  add('unknown_key: signed by a key the server does not know', buildKnock(ssh, mallory, spk, NOW_MS, rnd));
  add('bad_signature: alice\'s key id, mallory\'s signature', rawKnock(encodePayload(ssh, NOW_MS, nonce()), mallory, alice));
  add('bad_signature: signed for another server, sealed to this one', rawKnock(encodePayload(ssh, NOW_MS, nonce()), alice, alice, fx.other.publicKey));
  add('revoked: valid signature by a revoked key', buildKnock(ssh, user('carol-revoked'), spk, NOW_MS, rnd));
  const payload = (fields: Record<string, unknown>): Uint8Array => packr.pack(fields);
  const t = BigInt(NOW_MS);
  add('bad_payload: not msgpack (truncated map)', rawKnock(Uint8Array.of(0x83, 0xa1, 0x74, 0xd3, 0, 0, 1, 0xa0, 0xa1, 0x6e, 0xc4, 0x10, ...nonce(), 0xa1, 0x61), alice));
  add('bad_payload: trailing byte after the map', rawKnock(concat(encodePayload(ssh, NOW_MS, nonce()), Uint8Array.of(0xc0)), alice));
  add('bad_payload: unknown field "x"', rawKnock(payload({ t, n: nonce(), a: [['tcp', 22]], x: 1 }), alice));
  add('bad_payload: port 0', rawKnock(payload({ t, n: nonce(), a: [['tcp', 0]] }), alice));
  add('bad_payload: port 65536', rawKnock(payload({ t, n: nonce(), a: [['tcp', 65536]] }), alice));
  add('bad_payload: protocol "icmp"', rawKnock(payload({ t, n: nonce(), a: [['icmp', 22]] }), alice));
  add('bad_payload: empty access list', rawKnock(payload({ t, n: nonce(), a: [] }), alice));
  add('bad_payload: 17 access entries', rawKnock(payload({ t, n: nonce(), a: Array.from({ length: 17 }, (_, i) => ['tcp', i + 1]) }), alice));
  add('bad_payload: nonce of 15 bytes', rawKnock(payload({ t, n: rnd(15), a: [['tcp', 22]] }), alice));
  add('bad_payload: missing timestamp', rawKnock(payload({ n: nonce(), a: [['tcp', 22]], d: 30 }), alice));
  add('bad_payload: duration 0', rawKnock(payload({ t, n: nonce(), a: [['tcp', 22]], d: 0 }), alice));
  add('bad_payload: open address of 5 bytes', rawKnock(payload({ t, n: nonce(), a: [['tcp', 22]], o: rnd(5) }), alice));
  add('bad_payload: timestamp is a string', rawKnock(payload({ t: String(NOW_MS), n: nonce(), a: [['tcp', 22]] }), alice));
  add('stale: 31 s old', buildKnock(ssh, alice, spk, NOW_MS - WINDOW_MS - 1_000, rnd));
  add('stale: 31 s in the future', buildKnock(ssh, alice, spk, NOW_MS + WINDOW_MS + 1_000, rnd));

  const users: VectorUser[] = [...fx.users].map(([name, u]) => ({
    name,
    seed: toHex(u.keys.secretKey.subarray(0, 32)),
    publicKey: toHex(u.keys.publicKey),
    keyId: toHex(deriveKeyId(u.keys.publicKey)),
    revoked: u.revoked,
  }));
  const ctx: CheckContext = { server: fx.server, lookup: lookupFor(users), nowMs: NOW_MS, windowMs: WINDOW_MS };
  return {
    about: 'sesame protocol v1 test vectors; regenerate with `npm run vectors`. Check each packet with the server key, the users below (mallory is not one of them) at nowMs with windowMs; expect the verdict given.',
    randomness: 'all randomness (nonces, ephemeral box keys, junk) is drawn in order from BLAKE2b-512("sesame/v1 test vectors" || u32be(i)), i = 0, 1, ...',
    nowMs: NOW_MS,
    windowMs: WINDOW_MS,
    server: { secretKey: toHex(fx.server.secretKey), publicKey: toHex(spk), mac1Key: toHex(fx.server.mac1Key) },
    otherServer: { secretKey: toHex(fx.other.secretKey), publicKey: toHex(fx.other.publicKey) },
    users,
    vectors: vectors.map((v) => ({ name: v.name, packet: toHex(v.packet), expect: expectFrom(v.packet, ctx) })),
  };
}

function bigEndian64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}
