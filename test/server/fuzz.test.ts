// Fuzzing the whole packet path and the config/users loaders: never a crash, never an acceptance of anything but unmodified valid knocks, bounded memory. The 1,000,000-packet run is `npm run bench:fuzz`.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { loadConfig, parseConfig } from '../../src/server/config.ts';
import { OperatorError } from '../../src/errors.ts';
import { generateUserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { loadUsers, parseUsers } from '../../src/server/users.ts';
import { fuzzWorld, runFuzz } from '../helpers/fuzz.ts';

const PACKETS = Number(process.env['FUZZ_PACKETS'] ?? '40000');
const dirs: string[] = [];
before(async () => { await loadSodium(); });
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

test(`${PACKETS} generated packets through the full pipeline: no crash, only unmodified valid knocks accepted, each once`, async () => {
  const world = fuzzWorld(50);
  try {
    const r = await runFuzz(world, PACKETS, 0.02);
    assert.equal(r.validAccepted, 50, 'every valid knock accepted the first time');
    assert.equal(world.accepted.length, 50, 'nothing accepted after that: replays and mutations all refused');
    assert.equal(world.firewall.held.length, 50);
    assert.ok(world.firewall.held.every((g) => g.access.proto === 'tcp' && g.access.port === 22 && g.address.text === '10.0.0.2'));
    assert.ok([...r.perGenerator.values()].every((n) => n > 0), 'every generator ran');
    assert.ok(r.heapGrowthMiB < 64, `heap grew ${r.heapGrowthMiB.toFixed(1)} MiB`);
    const totals = world.deps.drops.totals;
    for (const reason of ['bad_length', 'bad_version', 'bad_mac', 'bad_box', 'bad_signature', 'replay']) assert.ok((totals.get(reason as never) ?? 0) > 0, `no ${reason} drops seen`);
  } finally {
    world.close();
  }
});

/** A loader outcome: a value, or an OperatorError with the config exit code. Anything else is a bug. */
function outcome(fn: () => unknown): 'ok' | 'refused' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof OperatorError && err.exitCode === 3 && err.message.length > 0) return 'refused';
    throw err;
  }
}

test('config loader: random JSON values and mutated valid configs are loaded or refused with a clear error, never crash', () => {
  const valid = { serverKey: 'k', usersFile: 'u', protect: ['tcp/22'], knockPort: 62201, listen: ['::'], limits: { maxSources: 100 } };
  fc.assert(fc.property(fc.jsonValue(), (v) => { outcome(() => parseConfig(v, 'fuzz.json')); }), { numRuns: 3000 });
  fc.assert(
    fc.property(fc.constantFrom(...Object.keys(valid)), fc.jsonValue(), (key, value) => {
      outcome(() => parseConfig({ ...valid, [key]: value }, 'fuzz.json'));
    }),
    { numRuns: 3000 },
  );
});

test('users loader: random JSON values, mutated users and random bytes are loaded whole or refused whole', () => {
  const line = formatKeyLine(KEY_TYPE.userPublic, generateUserKeys().publicKey, 'x').trim();
  fc.assert(fc.property(fc.jsonValue(), (v) => { outcome(() => parseUsers(v, 'fuzz.json')); }), { numRuns: 3000 });
  fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom('keys', 'ports', 'from', 'maxDurationSeconds', 'mayOpenOtherAddress', 'extra'), fc.string({ maxLength: 60 }), (value, field, keyText) => {
      outcome(() => parseUsers({ users: { a: { keys: [{ key: line }, { key: keyText }], ports: ['tcp/22'], [field]: value } } }, 'fuzz.json'));
    }),
    { numRuns: 3000 },
  );
  const dir = mkdtempSync(join(tmpdir(), 'sesame-fuzzfiles-'));
  dirs.push(dir);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const file = join(dir, 'f.json');
      writeFileSync(file, bytes);
      assert.equal(outcome(() => loadUsers(file)), 'refused');
      assert.equal(outcome(() => loadConfig(file)), 'refused');
    }),
    { numRuns: 1000 },
  );
});
