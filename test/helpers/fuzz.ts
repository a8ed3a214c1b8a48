// The fuzz harness: the full server pipeline in-process (real keys, users, rate limiter, replay store, policy) with a recording firewall, fed generated packets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import fc from 'fast-check';
import { parseAddress } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { concat, toHex } from '../../src/protocol/bytes.ts';
import { RecordingFirewall } from './firewall.ts';
import { deriveKeyId, generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { buildKnock, encodePayload, framePacket, signedMessage, systemRandom, tokenBytes } from '../../src/protocol/build.ts';
import { WIRE } from '../../src/protocol/layout.ts';
import { DropLog } from '../../src/server/log.ts';
import { handlePacket } from '../../src/server/pipeline.ts';
import type { PipelineDeps } from '../../src/server/pipeline.ts';
import { RateLimiter } from '../../src/server/ratelimit.ts';
import { ReplayStore } from '../../src/server/replay.ts';
import { sodium } from '../../src/protocol/sodium.ts';
import { parseUsers } from '../../src/server/users.ts';

export interface FuzzWorld {
  readonly deps: PipelineDeps;
  readonly firewall: RecordingFirewall;
  readonly accepted: string[];
  readonly alice: UserKeys;
  readonly valid: Uint8Array[];
  readonly source: Address;
  readonly generators: { readonly name: string; readonly next: () => Uint8Array }[];
  close(): void;
}

export function fuzzWorld(validCount: number): FuzzWorld {
  const server = generateServerKeys();
  const alice = generateUserKeys();
  const mallory = generateUserKeys();
  const users = parseUsers({ users: { alice: { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, alice.publicKey, 'a').trim() }], ports: ['tcp/22'] } } }, 'fuzz-users.json');
  const dir = mkdtempSync(join(tmpdir(), 'sesame-fuzz-'));
  const accepted: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.includes('"knock.accepted"')) accepted.push(line);
      done();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const now = (): number => Date.now();
  const firewall = new RecordingFirewall();
  const deps: PipelineDeps = {
    servers: () => [server],
    users: () => users,
    limiter: new RateLimiter({ perSecond: 1e9, burst: 1e9, maxSources: 1024, now }),
    replay: new ReplayStore({ dir, windowMs: 30_000, maxEntries: 10_000_000, now }),
    firewall,
    bounds: { defaultDurationSeconds: 30, maxDurationSeconds: 300 },
    windowMs: 30_000,
    now,
    log,
    drops: new DropLog(log, { perInterval: 5, intervalMs: 10_000, now }),
    resync: async () => {},
  };
  const request = { access: [{ proto: 'tcp' as const, port: 22 }] };
  const valid = Array.from({ length: validCount }, () => buildKnock(request, alice, server.publicKey, Date.now(), systemRandom));
  const pick = (): Uint8Array => valid[Math.floor(Math.random() * valid.length)] ?? new Uint8Array(0);
  const sample = <T>(arb: fc.Arbitrary<T>): T => fc.sample(arb, 1)[0] as T;
  const withMac = (box: Uint8Array): Uint8Array => {
    const input = concat(WIRE.header, tokenBytes(server.publicKey, Date.now()), box);
    return concat(input, sodium().crypto_generichash(WIRE.mac1Bytes, input, server.mac1Key));
  };
  const signedInner = (signer: UserKeys, payload: Uint8Array): Uint8Array =>
    concat(deriveKeyId(alice.publicKey), sodium().crypto_sign_detached(signedMessage(server.publicKey, payload), signer.secretKey), payload);
  const generators = [
    { name: 'random bytes', next: () => systemRandom(Math.floor(Math.random() * 600)) },
    { name: 'random after a valid header', next: () => concat(WIRE.header, systemRandom(Math.floor(Math.random() * 500))) },
    { name: 'random after a valid header and token', next: () => concat(WIRE.header, tokenBytes(server.publicKey, Date.now()), systemRandom(Math.floor(Math.random() * 500))) },
    {
      name: 'bit flips in a valid knock',
      next: () => {
        const m = Uint8Array.from(pick());
        for (let i = 1 + Math.floor(Math.random() * 4); i > 0; i--) {
          const at = Math.floor(Math.random() * m.length);
          m[at] = (m[at] ?? 0) ^ (1 + Math.floor(Math.random() * 255));
        }
        return m;
      },
    },
    { name: 'truncated or extended valid knock', next: () => { const p = pick(); const cut = Math.floor(Math.random() * p.length); return Math.random() < 0.5 ? p.subarray(0, cut) : concat(p, systemRandom(1 + Math.floor(Math.random() * 40))); } },
    { name: 'spliced valid knocks', next: () => { const a = pick(); const b = pick(); const at = Math.floor(Math.random() * a.length); return concat(a.subarray(0, at), b.subarray(at)); } },
    { name: 'random box behind a correct mac1', next: () => withMac(systemRandom(160 + Math.floor(Math.random() * 200))) },
    { name: 'inner flipped behind a correct box and mac1', next: () => { const inner = signedInner(alice, encodePayload(request, Date.now(), systemRandom(16))); const at = Math.floor(Math.random() * inner.length); inner[at] = (inner[at] ?? 0) ^ 0x40; return framePacket(inner, server.publicKey, Date.now(), systemRandom); } },
    { name: 'alice key id, mallory signature', next: () => framePacket(signedInner(mallory, encodePayload(request, Date.now(), systemRandom(16))), server.publicKey, Date.now(), systemRandom) },
    { name: 'replay of a valid knock', next: pick },
    { name: 'msgpack junk signed by alice', next: () => framePacket(signedInner(alice, sample(fc.uint8Array({ minLength: WIRE.minPayloadBytes, maxLength: 120 }))), server.publicKey, Date.now(), systemRandom) },
  ];
  const source = parseAddress('10.0.0.2');
  if (source === undefined) throw new Error('address');
  return { deps, firewall, accepted, alice, valid, source, generators, close: () => { deps.replay.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/** Feeds `count` generated packets (weights favour the cheap generators, as a real flood would), then each valid knock once. */
export async function runFuzz(world: FuzzWorld, count: number, expensiveShare: number): Promise<{ perGenerator: Map<string, number>; heapGrowthMiB: number; validAccepted: number }> {
  const cheap = world.generators.slice(0, 5);
  const expensive = world.generators.slice(5);
  const perGenerator = new Map<string, number>();
  const validHex = new Set(world.valid.map(toHex));
  // The valid knocks first, each once: they must be accepted; every later copy must not be.
  for (const p of world.valid) handlePacket(world.deps, p, world.source);
  const validAccepted = world.accepted.length;
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) {
    const pool = Math.random() < expensiveShare ? expensive : cheap;
    const g = pool[Math.floor(Math.random() * pool.length)];
    if (g === undefined) continue;
    const packet = g.next();
    const before = world.accepted.length;
    handlePacket(world.deps, packet, world.source);
    if (world.accepted.length !== before && !validHex.has(toHex(packet))) throw new Error(`accepted a packet that no valid knock produced (${g.name}): ${toHex(packet)}`);
    perGenerator.set(g.name, (perGenerator.get(g.name) ?? 0) + 1);
    if (i % 5000 === 0) await new Promise((r) => setImmediate(r));
  }
  await world.deps.replay.durable();
  global.gc?.();
  return { perGenerator, heapGrowthMiB: (process.memoryUsage().heapUsed - heapBefore) / 1048576, validAccepted };
}
