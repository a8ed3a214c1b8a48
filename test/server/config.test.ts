// Server config and users file: defaults, resolved paths, and errors that name file, JSON path and expectation.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { parseConfig } from '../../src/server/config.ts';
import { planReload } from '../../src/server/reload.ts';
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
  assert.deepEqual(c.confirmPorts, { first: 62202, last: 62217 });
  assert.deepEqual(parseConfig({ ...minimal, confirmPorts: '40000-40001' }, '/x/c.json').confirmPorts, { first: 40000, last: 40001 });
});

test('protect: "tcp/22" is checked on both paths; an object names its path (input: after DNAT, forward: before)', () => {
  const c = parseConfig({ ...minimal, protect: ['tcp/22', { port: 'tcp/8080', path: 'forward' }, { port: 'udp/53', path: 'input' }, { port: 'tcp/443' }] }, '/x/c.json');
  const text = (l: readonly { proto: string; port: number }[]): string[] => l.map((a) => `${a.proto}/${a.port}`);
  assert.deepEqual(text(c.protect), ['tcp/22', 'tcp/8080', 'udp/53', 'tcp/443']);
  assert.deepEqual(text(c.protectInput), ['tcp/22', 'udp/53', 'tcp/443']);
  assert.deepEqual(text(c.protectForward), ['tcp/22', 'tcp/8080', 'tcp/443']);
});

test('a reload that only changes a port\'s path sets the table up again', () => {
  const before = parseConfig({ ...minimal, protect: ['tcp/8080'] }, '/x/c.json');
  const after = parseConfig({ ...minimal, protect: [{ port: 'tcp/8080', path: 'input' }] }, '/x/c.json');
  const plan = planReload(before, after);
  assert.deepEqual([plan.applied, plan.firewall], [['protect'], true]);
  assert.equal(planReload(before, parseConfig({ ...minimal, protect: [{ port: 'tcp/8080', path: 'both' }] }, '/x/c.json')).firewall, false, 'the same paths spelled otherwise');
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
    [{ ...minimal, protect: [{ port: 'tcp/22', path: 'outside' }] }, /^\/x\/c\.json: \/protect\/0\/path: expected one of "both", "input", "forward"$/m],
    [{ ...minimal, protect: [{ port: 'tcp/22', paths: 'input' }] }, /\/protect\/0: unknown key "paths"/],
    [{ ...minimal, protect: [{ path: 'input' }] }, /\/protect\/0: missing required key "port"/],
    [{ ...minimal, protect: [{ port: 'tcp/0' }] }, /\/protect\/0\/port: expected tcp\/PORT or udp\/PORT with PORT 1-65535, got "tcp\/0"/],
    [{ ...minimal, protect: [22] }, /\/protect\/0: must be object/],
    [{ ...minimal, protect: ['tcp/22', { port: 'tcp/22', path: 'input' }] }, /\/protect\/1\/port: tcp\/22 is already listed at \/protect\/0/],
    [{ ...minimal, listen: ['10.0.0.300'] }, /\/listen\/0: expected an IPv4 or IPv6 address, got "10.0.0.300"/],
    [{ ...minimal, logLevel: 'loud' }, /\/logLevel: expected one of "fatal", "error"/],
    [{ ...minimal, capture: { mode: 'raw' } }, /\/capture\/mode: expected one of "udp", "pcap"/],
    [{ ...minimal, firewall: { table: 'Filter; drop' } }, /\/firewall\/table: does not match/],
    [{ ...minimal, defaultDurationSeconds: 600, maxDurationSeconds: 60 }, /\/defaultDurationSeconds: 600 is more than maxDurationSeconds \(60\)/],
    [[], /\/x\/c\.json: \/: must be object/],
    [{ usersFile: 'u', protect: ['tcp/22'] }, /^\/x\/c\.json: \/: give exactly one of "serverKey", "serverKeys"$/],
    [{ ...minimal, serverKeys: ['b.key'] }, /^\/x\/c\.json: \/: give exactly one of "serverKey", "serverKeys"$/],
    [{ ...minimal, confirmPorts: '62202' }, /\/confirmPorts: does not match/],
    [{ ...minimal, confirmPorts: '62217-62202' }, /\/confirmPorts: 62217-62202: the last port must be above the first/],
    [{ ...minimal, confirmPorts: '0-5' }, /\/confirmPorts: expected FIRST-LAST, TCP ports 1-65535/],
    [{ ...minimal, confirmPorts: '1000-3000' }, /\/confirmPorts: 1000-3000: at most 1024 ports/],
    [{ ...minimal, protect: ['tcp/22', 'tcp/62210'] }, /\/confirmPorts: 62202-62217 includes the protected port tcp\/62210/],
    [{ usersFile: 'u', protect: ['tcp/22'], serverKeys: [] }, /\/serverKeys: must NOT have fewer than 1 items/],
  ];
  for (const [json, pattern] of cases) assert.match(refusal(() => parseConfig(json, '/x/c.json')), pattern);
});

test('metrics: off unless configured; loopback or a unix socket; a public address is refused without allowRemote', () => {
  assert.equal(parseConfig(minimal, '/x/c.json').metrics, undefined);
  const listen = (metrics: unknown): string | undefined => parseConfig({ ...minimal, metrics }, '/x/c.json').metrics?.text;
  assert.equal(listen({ listen: '127.0.0.1:9462' }), '127.0.0.1:9462');
  assert.equal(listen({ listen: '127.0.0.53:9462' }), '127.0.0.53:9462');
  assert.equal(listen({ listen: '[::1]:9462' }), '[::1]:9462');
  assert.equal(listen({ listen: 'unix:/run/sesame/metrics.sock' }), 'unix:/run/sesame/metrics.sock');
  assert.equal(listen({ listen: 'unix:metrics.sock' }), 'unix:/x/metrics.sock', 'relative to the config file');
  assert.equal(listen({ listen: '0.0.0.0:9462', allowRemote: true }), '0.0.0.0:9462');
  assert.equal(listen({ listen: '[2001:db8::7]:9462', allowRemote: true }), '[2001:db8::7]:9462');
  const publicRefusal = /^\/x\/c\.json: \/metrics\/listen: (0\.0\.0\.0:9462|\[::\]:9462|203\.0\.113\.5:9462|\[2001:db8::7\]:9462) is not a loopback address.*set \/metrics\/allowRemote to true$/;
  for (const address of ['0.0.0.0:9462', '[::]:9462', '203.0.113.5:9462', '[2001:db8::7]:9462']) {
    assert.match(refusal(() => parseConfig({ ...minimal, metrics: { listen: address } }, '/x/c.json')), publicRefusal);
    assert.match(refusal(() => parseConfig({ ...minimal, metrics: { listen: address, allowRemote: false } }, '/x/c.json')), publicRefusal);
  }
  const cases: [unknown, RegExp][] = [
    [{ listen: 'localhost:9462' }, /^\/x\/c\.json: \/metrics\/listen: expected IPv4:PORT, \[IPv6\]:PORT or unix:PATH .*got "localhost:9462"$/],
    [{ listen: '127.0.0.1' }, /\/metrics\/listen: expected IPv4:PORT/],
    [{ listen: '127.0.0.1:0' }, /\/metrics\/listen: expected IPv4:PORT/],
    [{ listen: '127.0.0.1:65536' }, /\/metrics\/listen: expected IPv4:PORT/],
    [{ listen: '::1:9462' }, /\/metrics\/listen: expected IPv4:PORT/],
    [{ listen: '[127.0.0.1]:9462' }, /\/metrics\/listen: expected IPv4:PORT/],
    [{ listen: 'unix:' }, /\/metrics\/listen: expected unix:PATH/],
    [{ listen: `unix:/${'a'.repeat(110)}` }, /\/metrics\/listen: the socket path .* is longer than 107 bytes/],
    [{ listen: '' }, /\/metrics\/listen: must NOT have fewer than 1 characters/],
    [{}, /\/metrics: missing required key "listen"/],
    [{ listen: '127.0.0.1:9462', port: 1 }, /\/metrics: unknown key "port"/],
    [{ listen: '0.0.0.0:9462', allowRemote: 'yes' }, /\/metrics\/allowRemote: must be boolean/],
  ];
  for (const [metrics, pattern] of cases) assert.match(refusal(() => parseConfig({ ...minimal, metrics }, '/x/c.json')), pattern);
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
