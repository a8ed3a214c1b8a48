// Protocol benchmark: knocks built and checked per second on one core, and how much cheaper junk is to reject. Prints figures; asserts nothing.
import { toHex } from '../../src/protocol/bytes.ts';
import { checkKnock } from '../helpers/verdict.ts';
import type { CheckContext } from '../helpers/verdict.ts';
import { deriveKeyId, generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { WIRE } from '../../src/protocol/layout.ts';
import { loadSodium, sodium } from '../../src/protocol/sodium.ts';
import type { AuthorizedKey } from '../../src/server/verify.ts';

await loadSodium();
const server = generateServerKeys();
const alice = generateUserKeys();
const keys = new Map<string, AuthorizedKey>();
const id = deriveKeyId(alice.publicKey);
keys.set(toHex(id), { keyId: id, publicKey: alice.publicKey, user: 'alice', revoked: false });
const ctx = (): CheckContext => ({ server, lookup: (k) => keys.get(toHex(k)), nowMs: Date.now(), windowMs: 30_000 });
const request = { access: [{ proto: 'tcp' as const, port: 22 }] };

function rate(label: string, seconds: number, fn: () => void): number {
  for (let i = 0; i < 200; i++) fn(); // warm up the JIT
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    now = process.hrtime.bigint();
  }
  const perSecond = n / (Number(now - start) / 1e9);
  console.log(`${label.padEnd(44)} ${perSecond.toFixed(0).padStart(10)} /s   ${(1e6 / perSecond).toFixed(2).padStart(9)} µs each`);
  return perSecond;
}

const seconds = Number(process.env['BENCH_SECONDS'] ?? '2');
console.log(`sesame protocol benchmark, node ${process.version}, libsodium ${sodium().SODIUM_VERSION_STRING}, one core, ${seconds} s per figure`);
const pool = Array.from({ length: 2000 }, () => buildKnock(request, alice, server.publicKey, Date.now(), systemRandom));
let k = 0;
rate('build a knock (client)', seconds, () => buildKnock(request, alice, server.publicKey, Date.now(), systemRandom));
const check = rate('check a valid knock (open, verify, decode)', seconds, () => {
  const r = checkKnock(pool[k++ % pool.length] ?? new Uint8Array(0), ctx());
  if (!r.ok) throw new Error(r.reason);
});
rate('build + check', seconds, () => {
  if (!checkKnock(buildKnock(request, alice, server.publicKey, Date.now(), systemRandom), ctx()).ok) throw new Error('refused');
});
const junkMac = pool.slice(0, 256).map((p) => Uint8Array.from(p, (b, i) => (i === p.length - 1 ? b ^ 1 : b)));
const mac = rate('reject junk with a wrong mac1', seconds, () => {
  if (checkKnock(junkMac[k++ & 255] ?? new Uint8Array(0), ctx()).ok) throw new Error('accepted');
});
const junkRandom = Array.from({ length: 256 }, () => sodium().randombytes_buf(189));
const rnd = rate('reject random bytes', seconds, () => {
  if (checkKnock(junkRandom[k++ & 255] ?? new Uint8Array(0), ctx()).ok) throw new Error('accepted');
});
console.log(`wrong-mac1 junk is rejected ${(mac / check).toFixed(0)}x faster than a valid knock is checked; random bytes ${(rnd / check).toFixed(0)}x`);
console.log(`packet size ${pool[0]?.length ?? 0} bytes for one port (header ${WIRE.headerBytes} + token ${WIRE.tokenBytes} + box + mac1 ${WIRE.mac1Bytes})`);
