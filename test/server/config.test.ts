// Server config and users file: defaults, resolved paths, and errors that name file, JSON path and expectation.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { parseConfig } from '../../src/server/config.ts';
import { OperatorError } from '../../src/errors.ts';
import { generateUserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { toBase64 } from '../../src/protocol/bytes.ts';
import { parseUsers } from '../../src/server/users.ts';

before(async () => { await loadSodium(); });

const minimal = { serverKey: 'server.key', usersFile: 'users.json', protect: ['tcp/22'] };

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof OperatorError, `expected an OperatorError, got ${String(err)}`);
    assert.equal(err.exitCode, 3);
    return err.message;
  }
  return assert.fail('accepted');
}

test('defaults and relative paths', () => {
  const c = parseConfig(minimal, '/etc/sesame/config.json');
  assert.equal(c.knockPort, 62201);
  assert.deepEqual(c.listen.map((a) => a.text), ['0.0.0.0', '::']);
  assert.deepEqual(c.serverKeyPaths, ['/etc/sesame/server.key']);
  assert.equal(c.usersPath, '/etc/sesame/users.json');
  assert.equal(c.stateDir, '/var/lib/sesame');
  assert.equal(c.windowMs, 30_000);
  assert.equal(c.table, 'sesame');
  assert.equal(c.capture.mode, 'udp');
  assert.deepEqual(c.protect, [{ proto: 'tcp', port: 22 }]);
});

test('serverKeys lists several server keys (a rotation); serverKey is the one-key form', () => {
  const c = parseConfig({ serverKeys: ['old.key', '/etc/sesame/new.key'], usersFile: 'u.json', protect: ['tcp/22'] }, '/x/c.json');
  assert.deepEqual(c.serverKeyPaths, ['/x/old.key', '/etc/sesame/new.key']);
});

test('every config error names the file, the JSON path and what was expected', () => {
  const cases: [unknown, RegExp][] = [
    [{ ...minimal, knockPort: 70000 }, /^\/x\/c\.json: \/knockPort: must be <= 65535$/m],
    [{ ...minimal, knockPort: '62201' }, /\/knockPort: must be integer/],
    [{ ...minimal, colour: 'blue' }, /\/x\/c\.json: \/: unknown key "colour"/],
    [{ serverKey: 'k', protect: ['tcp/22'] }, /: \/: give exactly one of "usersFile", "users"/],
    [{ ...minimal, protect: ['icmp/1'] }, /\/protect\/0: does not match/],
    [{ ...minimal, protect: ['tcp/99999'] }, /\/protect\/0: expected tcp\/PORT or udp\/PORT with PORT 1-65535, got "tcp\/99999"/],
    [{ ...minimal, listen: ['10.0.0.300'] }, /\/listen\/0: expected an IPv4 or IPv6 address, got "10.0.0.300"/],
    [{ ...minimal, logLevel: 'loud' }, /\/logLevel: expected one of "fatal", "error"/],
    [{ ...minimal, capture: { mode: 'raw' } }, /\/capture\/mode: expected one of "udp", "pcap"/],
    [{ ...minimal, firewall: { table: 'Filter; drop' } }, /\/firewall\/table: does not match/],
    [{ ...minimal, defaultDurationSeconds: 600, maxDurationSeconds: 60 }, /\/defaultDurationSeconds: 600 is more than maxDurationSeconds \(60\)/],
    [[], /\/x\/c\.json: \/: must be object/],
    [{ usersFile: 'u', protect: ['tcp/22'] }, /^\/x\/c\.json: \/: give exactly one of "serverKey", "serverKeys"$/],
    [{ ...minimal, serverKeys: ['b.key'] }, /^\/x\/c\.json: \/: give exactly one of "serverKey", "serverKeys"$/],
    [{ usersFile: 'u', protect: ['tcp/22'], serverKeys: [] }, /\/serverKeys: must NOT have fewer than 1 items/],
  ];
  for (const [json, pattern] of cases) assert.match(refusal(() => parseConfig(json, '/x/c.json')), pattern);
});

const keyLine = (): string => formatKeyLine(KEY_TYPE.userPublic, generateUserKeys().publicKey, 'test').trim();

test('users: O(1) lookup by key id, policies, OpenSSH keys, revoked flag', () => {
  const alice = generateUserKeys();
  const bob = generateUserKeys();
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.from(bob.publicKey)]);
  const table = parseUsers({
    users: {
      alice: { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, alice.publicKey, 'a').trim() }], ports: ['tcp/22'], from: ['10.0.0.0/8'], maxDurationSeconds: 60 },
      bob: { keys: [], ports: ['tcp/22', 'udp/51820'], mayOpenOtherAddress: true },
    },
    revoked: [{ key: `ssh-ed25519 ${toBase64(blob)} bob@laptop`, user: 'bob', at: '2026-11-25T00:00:00Z', reason: 'left' }],
  }, 'users.json');
  assert.equal(table.keys.size, 2);
  const a = [...table.keys.values()].find((k) => k.user === 'alice');
  assert.ok(a && table.lookup(a.keyId)?.user === 'alice' && !a.revoked);
  const b = [...table.keys.values()].find((k) => k.user === 'bob');
  assert.ok(b?.revoked);
  assert.deepEqual(Buffer.from(b.publicKey), Buffer.from(bob.publicKey));
  assert.equal(table.policy('alice')?.from[0]?.text, '10.0.0.0/8');
  assert.equal(table.policy('bob')?.mayOpenOtherAddress, true);
  assert.equal(table.policy('alice')?.mayOpenOtherAddress, false);
});

test('users file errors name file, path and problem; nothing partial is returned', () => {
  const k = keyLine();
  const cases: [unknown, RegExp][] = [
    [{ users: { alice: { keys: [{ key: 'sesame-ed25519 AAAA' }], ports: ['tcp/22'] } } }, /u\.json: \/users\/alice\/keys\/0\/key: not a user public key/],
    [{ users: { alice: { keys: [{ key: k }], ports: ['tcp/22'] }, bob: { keys: [{ key: k }], ports: ['tcp/22'] } } }, /\/users\/bob\/keys\/0\/key: key [0-9a-f]{32} is already listed \(for user "alice"\)/],
    [{ users: { alice: { keys: [{ key: k }], ports: ['tcp/22'] } }, revoked: [{ key: k, user: 'alice', at: 'x' }] }, /\/users\/alice\/keys\/0\/key: key [0-9a-f]{32} is already listed \(revoked, of user "alice"\)/],
    [{ users: { 'bad name!': { keys: [{ key: k }], ports: ['tcp/22'] } } }, /u\.json: \/users\/bad name!: name "bad name!" is not allowed/],
    [{ users: { alice: { keys: [{ key: k }], ports: ['tcp/22'], from: ['10.0.0.0/40'] } } }, /\/users\/alice\/from\/0: expected an address or CIDR/],
    [{ users: { alice: { keys: [{ key: k }], ports: ['tcp/22'], admin: true } } }, /\/users\/alice: unknown key "admin"/],
    [{ users: { alice: { keys: [{ key: k }], ports: [] } } }, /\/users\/alice\/ports: must NOT have fewer than 1 items/],
    [{ users: {}, revoked: [{ key: k, user: 'alice' }] }, /\/revoked\/0: missing required key "at"/],
    [{ user: {} }, /u\.json: \/: unknown key "user"/],
  ];
  for (const [json, pattern] of cases) assert.match(refusal(() => parseUsers(json, 'u.json')), pattern);
});
