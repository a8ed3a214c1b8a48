// Deterministic protocol test vectors (v2): fixed keys, fixed clock, seeded randomness; each vector says how it was made (README.md, "Test vectors"). generate.ts writes them to knocks.json; test/vectors.test.ts checks code and file agree.
import { concat, toHex, userPublicKey, utf8 } from '../../src/protocol/bytes.ts';
import type { UserPublicKey } from '../../src/protocol/bytes.ts';
import { checkKnock } from '../helpers/verdict.ts';
import type { CheckContext } from '../helpers/verdict.ts';
import { deriveKeyId, serverKeysFromSecret, userKeysFromSeed } from '../../src/protocol/keys.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { serverSecretKey } from '../../src/protocol/bytes.ts';
import { buildKnock, encodePayload, framePacket, signedMessage, tokenBytes } from '../../src/protocol/build.ts';
import type { KnockRequest, RandomBytes } from '../../src/protocol/build.ts';
import { parseAddress } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { MAX_PACKET_BYTES, MIN_PACKET_BYTES, WIRE } from '../../src/protocol/layout.ts';
import { sodium } from '../../src/protocol/sodium.ts';
import type { AuthorizedKey } from '../../src/server/verify.ts';

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
  confirmPort?: number;
}

export interface Vector {
  name: string;
  /** How the packet was made, precisely enough to rebuild it byte for byte. */
  made: string;
  /** The signed payload P in hex, where the packet carries one. */
  payload?: string;
  packet: string;
  expect: Expect;
}

export interface VectorFile {
  about: string;
  randomness: string;
  keys: string;
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
    ...(p.confirmPort === undefined ? {} : { confirmPort: p.confirmPort }),
  };
}

function addr(text: string): Address {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(text);
  return a;
}


const RANDOM_LABEL = 'sesame/v2 test vectors';
const T = NOW_MS;

/** msgpack pieces for hand-made payloads (payload.ts writes the canonical ones). */
const b = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
const str = (s: string): Uint8Array => concat(b(0xa0 | s.length), utf8(s));
const u64 = (n: number): Uint8Array => concat(b(0xcf), bigEndian64(n));
const f64 = (n: number): Uint8Array => { const o = new Uint8Array(9); o[0] = 0xcb; new DataView(o.buffer).setFloat64(1, n); return o; };
const bin = (x: Uint8Array): Uint8Array => concat(b(0xc4, x.length), x);
const TCP22 = concat(b(0x92), str('tcp'), b(22));

export function generateVectors(): VectorFile {
  const fx = fixture();
  const user = (name: string): UserKeys => {
    const u = fx.users.get(name);
    if (u === undefined) throw new Error(name);
    return u.keys;
  };
  const alice = user('alice');
  const mallory = userKeysFromSeed(fixed('mallory'));
  const rnd = seededRandom(RANDOM_LABEL);
  const spk = fx.server.publicKey;
  const vectors: { name: string; made: string; payload?: Uint8Array; packet: Uint8Array }[] = [];
  const add = (name: string, made: string, packet: Uint8Array, payload?: Uint8Array): void => {
    vectors.push({ name, made, packet, ...(payload === undefined ? {} : { payload }) });
  };
  const nonce = (): Uint8Array => rnd(WIRE.nonceBytes);
  /** buildKnock, keeping its payload: draws the nonce (16 bytes) then the ephemeral seed (32 bytes). */
  const knock = (name: string, request: KnockRequest, signer: UserKeys, t: number, made = 'buildKnock: canonical payload with a drawn nonce, signed, sealed, framed'): Uint8Array => {
    const n = nonce();
    const payload = encodePayload(request, t, n);
    const packet = framed(payload, signer, signer, spk, spk, t);
    add(name, made, packet, payload);
    return packet;
  };
  /** Signs `payload` for `signedFor`, with `idOf`'s key id, seals to `sealedTo` with the next 32 drawn bytes as the ephemeral seed, token of `t`'s slot. */
  const framed = (payload: Uint8Array, signer: UserKeys, idOf: UserKeys, signedFor = spk, sealedTo = spk, t = T): Uint8Array =>
    framePacket(concat(deriveKeyId(idOf.publicKey), sodium().crypto_sign_detached(signedMessage(signedFor, payload), signer.secretKey), payload), sealedTo, t, rnd);
  const raw = (name: string, made: string, payload: Uint8Array, signer = alice, idOf = alice, signedFor = spk): void => add(name, made, framed(payload, signer, idOf, signedFor), payload);
  const ssh: KnockRequest = { access: [{ proto: 'tcp', port: 22 }] };
  const flip = (p: Uint8Array, at: number, xor: number): Uint8Array => Uint8Array.from(p, (x, i) => (i === at ? x ^ xor : x));

  knock('valid: alice asks for tcp/22', ssh, alice, T);
  knock('valid: bob asks for tcp/22 and udp/51820 for 120 s', { access: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }], durationSeconds: 120 }, user('bob'), T - 1_000);
  knock('valid: alice asks to open 198.51.100.7 (NAT)', { access: [{ proto: 'tcp', port: 443 }], openAddress: addr('198.51.100.7') }, alice, T + 2_000);
  knock('valid: alice asks to open 2001:db8::7 for 1 s', { access: [{ proto: 'tcp', port: 2222 }], durationSeconds: 1, openAddress: addr('2001:db8::7') }, alice, T);
  knock('valid: timestamp exactly at the window edge (-30 s)', ssh, alice, T - WINDOW_MS);
  knock('valid: 16 access entries (the maximum, array16 header)', { access: Array.from({ length: 16 }, (_, i) => ({ proto: 'udp' as const, port: 60000 + i })) }, alice, T);
  knock('valid: tcp/22 with confirmation port 62210', { access: [{ proto: 'tcp', port: 22 }], confirmPort: 62210 }, alice, T);
  knock('valid: every optional key (d, o, c) and tcp and udp entries', { access: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }, { proto: 'udp', port: 53 }], durationSeconds: 300, openAddress: addr('192.0.2.1'), confirmPort: 62202 }, alice, T);

  const good = knock('valid: alice asks for tcp/22 (the base of the altered packets below)', ssh, alice, T);
  add('bad_length: empty', 'zero bytes', new Uint8Array(0));
  add('bad_length: one byte under the minimum', `the first ${MIN_PACKET_BYTES - 1} bytes of the base packet`, good.subarray(0, MIN_PACKET_BYTES - 1));
  add('bad_length: one byte over the maximum', `${MAX_PACKET_BYTES + 1} bytes of 0x73`, new Uint8Array(MAX_PACKET_BYTES + 1).fill(0x73));
  add('old_version: a version 1 header and length', 'bytes 73 65 73 01, then the base packet from offset 8 (no token)', concat(WIRE.oldHeader, good.subarray(8)));
  add('bad_version: version byte 3', 'the base packet with byte 3 set to 03', Uint8Array.from(good, (x, i) => (i === 3 ? 3 : x)));
  add('bad_version: wrong magic', 'the base packet with byte 0 set to 53', Uint8Array.from(good, (x, i) => (i === 0 ? 0x53 : x)));
  add('bad_token: token byte flipped', 'the base packet with byte 4 xor 01', flip(good, 4, 1));
  add('bad_token: knock built for another server', 'buildKnock of tcp/22 at nowMs by alice for otherServer (its token, signature, box and mac1)', buildKnock(ssh, alice, fx.other.publicKey, T, rnd));
  const oldPayload = encodePayload(ssh, T - 120_000, nonce());
  add('bad_token: a knock from 120 s ago (its slot is no longer accepted)', 'canonical payload with t = nowMs - 120000 and a drawn nonce, framed with the token of its own slot', framed(oldPayload, alice, alice, spk, spk, T - 120_000), oldPayload);
  add('bad_mac: last byte of mac1 flipped', 'the base packet with its last byte xor 01', flip(good, good.length - 1, 1));
  add('bad_mac: sealed box byte flipped (mac1 covers it)', 'the base packet with byte 40 xor 80', flip(good, 40, 0x80));
  const junkInput = concat(WIRE.header, tokenBytes(spk, T), rnd(good.length - 24));
  add('bad_box: right token and mac1 over random box bytes', `header, the token of nowMs's slot, ${good.length - 24} drawn bytes, then mac1 over all of it`, concat(junkInput, sodium().crypto_generichash(16, junkInput, fx.server.mac1Key)));
  knock('unknown_key: signed by a key the server does not know', ssh, mallory, T, 'buildKnock by mallory (not a listed user)');
  raw('bad_signature: alice\'s key id, mallory\'s signature', 'canonical tcp/22 payload with a drawn nonce, signed by mallory, with alice\'s key id', encodePayload(ssh, T, nonce()), mallory, alice);
  raw('bad_signature: signed for another server, sealed to this one', 'canonical tcp/22 payload with a drawn nonce, signed by alice over otherServer\'s public key, sealed and framed for this server', encodePayload(ssh, T, nonce()), alice, alice, fx.other.publicKey);
  knock('revoked: valid signature by a revoked key', ssh, user('carol-revoked'), T, 'buildKnock by carol (revoked)');

  // Payloads: each made by hand from the msgpack pieces named in `made`; N is a drawn nonce, taken before the seed.
  const P = (made: string, name: string, ...parts: Uint8Array[]): void => raw(`bad_payload: ${name}`, `payload ${made}`, concat(...parts));
  const tn = (n = nonce()): Uint8Array => concat(str('t'), u64(T), str('n'), bin(n));
  P('83 "t" cf<t> "n" bin8 N "a" 92 a3"tcp" 16 cut after the "a" key: truncated map', 'not msgpack (truncated map)', b(0x83), tn(), str('a'));
  P('canonical tcp/22 then c0', 'trailing byte after the map', encodePayload(ssh, T, nonce()), b(0xc0));
  P('84 t n a, then "x" 01', 'unknown field "x"', b(0x84), tn(), str('a'), b(0x91), TCP22, str('x'), b(1));
  P('83 t n a [["tcp", 0]]', 'port 0', b(0x83), tn(), str('a'), b(0x91, 0x92), str('tcp'), b(0));
  P('83 t n a [["tcp", ce 00 01 00 00]]', 'port 65536', b(0x83), tn(), str('a'), b(0x91, 0x92), str('tcp'), b(0xce, 0, 1, 0, 0));
  P('83 t n a [["icmp", 22]]', 'protocol "icmp"', b(0x83), tn(), str('a'), b(0x91, 0x92), str('icmp'), b(22));
  P('83 t n a []', 'empty access list', b(0x83), tn(), str('a'), b(0x90));
  P('83 t n a dc 00 11 and 17 tcp entries, ports 1..17', '17 access entries', b(0x83), tn(), str('a'), b(0xdc, 0, 17), ...Array.from({ length: 17 }, (_, i) => concat(b(0x92), str('tcp'), b(i + 1))));
  P('83 "t" cf<t> "n" bin8 of 15 drawn bytes "a" [tcp/22]', 'nonce of 15 bytes', b(0x83), str('t'), u64(T), str('n'), bin(rnd(15)), str('a'), b(0x91), TCP22);
  P('83 "n" N "a" [tcp/22] "d" 1e', 'missing timestamp', b(0x83), str('n'), bin(nonce()), str('a'), b(0x91), TCP22, str('d'), b(30));
  P('84 t n a [tcp/22] "d" 00', 'duration 0', b(0x84), tn(), str('a'), b(0x91), TCP22, str('d'), b(0));
  P('84 t n a [tcp/22] "o" bin8 of 5 drawn bytes', 'open address of 5 bytes', b(0x84), tn(), str('a'), b(0x91), TCP22, str('o'), bin(rnd(5)));
  P('84 t n a [tcp/22] "o" bin8 ::ffff:198.51.100.7', 'IPv4-mapped open address', b(0x84), tn(), str('a'), b(0x91), TCP22, str('o'), bin(b(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7)));
  P('83 "t" as the string of its decimal digits, n, a', 'timestamp is a string', b(0x83), str('t'), concat(b(0xad), utf8(String(T))), str('n'), bin(nonce()), str('a'), b(0x91), TCP22);
  P('83 "t" cb<t as float64> n a', 'timestamp as float64', b(0x83), str('t'), f64(T), str('n'), bin(nonce()), str('a'), b(0x91), TCP22);
  P('83 "t" d3<t as int64> n a', 'timestamp as int64 (d3) instead of uint64 (cf)', b(0x83), str('t'), concat(b(0xd3), bigEndian64(T)), str('n'), bin(nonce()), str('a'), b(0x91), TCP22);
  P('83 t n a [["tcp", cb<22.0 as float64>]]', 'port as float64 22.0', b(0x83), tn(), str('a'), b(0x91, 0x92), str('tcp'), f64(22));
  P('83 t n a [["tcp", cc 16]]', 'port 22 as uint8 (cc 16) instead of a fixint', b(0x83), tn(), str('a'), b(0x91, 0x92), str('tcp'), b(0xcc, 22));
  P('84 t n a [tcp/22] then "t" again with t - 1', 'duplicate key "t"', b(0x84), tn(), str('a'), b(0x91), TCP22, str('t'), u64(T - 1));
  P('83 t n a [tcp/22, tcp/22]', 'duplicate access entry', b(0x83), tn(), str('a'), b(0x92), TCP22, TCP22);
  P('83 t n a [udp/53, tcp/22]', 'access entries out of order (udp before tcp)', b(0x83), tn(), str('a'), b(0x92, 0x92), str('udp'), b(53), TCP22);
  P('83 t n a [tcp/443, tcp/22]', 'access entries out of order (443 before 22)', b(0x83), tn(), str('a'), b(0x92, 0x92), str('tcp'), b(0xcd, 0x01, 0xbb), TCP22);
  P('83 "n" N "t" cf<t> "a" [tcp/22]', 'keys out of order (n before t)', b(0x83), str('n'), bin(nonce()), str('t'), u64(T), str('a'), b(0x91), TCP22);
  P('de 00 03 (map16) t n a [tcp/22]', 'map16 header instead of a fixmap', b(0xde, 0, 3), tn(), str('a'), b(0x91), TCP22);
  P('83 t n a [tcp/22] with "a" as str8 (d9 01 61)', 'key as str8 instead of a fixstr', b(0x83), tn(), b(0xd9, 1, 0x61), b(0x91), TCP22);
  P('84 t n a [tcp/22] "c" 00', 'confirmation port 0', b(0x84), tn(), str('a'), b(0x91), TCP22, str('c'), b(0));
  P('84 t n a [tcp/22] "c" ce 00 01 00 00', 'confirmation port 65536', b(0x84), tn(), str('a'), b(0x91), TCP22, str('c'), b(0xce, 0, 1, 0, 0));
  knock('stale: 31 s old', ssh, alice, T - WINDOW_MS - 1_000);
  knock('stale: 31 s in the future', ssh, alice, T + WINDOW_MS + 1_000);

  const users: VectorUser[] = [...fx.users].map(([name, u]) => ({
    name,
    seed: toHex(u.keys.secretKey.subarray(0, 32)),
    publicKey: toHex(u.keys.publicKey),
    keyId: toHex(deriveKeyId(u.keys.publicKey)),
    revoked: u.revoked,
  }));
  const ctx: CheckContext = { server: fx.server, lookup: lookupFor(users), nowMs: NOW_MS, windowMs: WINDOW_MS };
  return {
    about: 'sesame protocol v2 test vectors; regenerate with `npm run vectors`. Check each packet with the server key, the users below (mallory is not one of them) at nowMs with windowMs; expect the verdict given.',
    randomness: `one stream: block i = BLAKE2b-512(unkeyed, "${RANDOM_LABEL}" || u32be(i)), i = 0, 1, ..., blocks concatenated and drawn from in vector order, never skipped. A knock draws its 16-byte nonce, then 32 bytes that are the SEED of its ephemeral key pair: crypto_box_seed_keypair(seed) (secret = first 32 bytes of SHA-512(seed)), not the secret itself. Junk bytes are drawn where "made" says.`,
    keys: 'each fixed key is BLAKE2b-256(unkeyed, "sesame test vector key: " || label): label "server" is the server X25519 secret key itself, "other server" the other server\'s; "alice", "bob", "carol" (revoked) and "mallory" (not listed) are Ed25519 seeds for crypto_sign_seed_keypair.',
    nowMs: NOW_MS,
    windowMs: WINDOW_MS,
    server: { secretKey: toHex(fx.server.secretKey), publicKey: toHex(spk), mac1Key: toHex(fx.server.mac1Key) },
    otherServer: { secretKey: toHex(fx.other.secretKey), publicKey: toHex(fx.other.publicKey) },
    users,
    vectors: vectors.map((v) => ({ name: v.name, made: v.made, ...(v.payload === undefined ? {} : { payload: toHex(v.payload) }), packet: toHex(v.packet), expect: expectFrom(v.packet, ctx) })),
  };
}

function bigEndian64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}
