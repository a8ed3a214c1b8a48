// `sesame user ...` run as a real CLI against a temp server directory: edits, listings, refusals that change nothing, revocation record.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { toBase64 } from '../../src/protocol/bytes.ts';
import { generateUserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, makeServerDir } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const run = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await promisify(execFile)(process.execPath, [CLI, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};

describe('sesame user', () => {
  let dir: ServerDir;
  const users = (): { users: Record<string, { keys: { key: string }[]; ports: string[]; from?: string[]; maxDurationSeconds?: number }>; revoked?: { key: string; user: string; reason?: string; by?: string }[] } =>
    JSON.parse(readFileSync(dir.usersPath, 'utf8'));
  before(async () => {
    await loadSodium();
    dir = makeServerDir({ protect: ['tcp/22'] });
    dir.userKey('alice');
    dir.userKey('bob');
  });
  after(() => dir.remove());

  test('add from a .pub file, with policy options', async () => {
    const r = await run('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--ports', 'tcp/22,udp/51820', '--max-duration', '2m', '--from', '10.0.0.0/8,2001:db8::/32', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    const u = users().users['alice'];
    assert.deepEqual(u?.ports, ['tcp/22', 'udp/51820']);
    assert.equal(u?.maxDurationSeconds, 120);
    assert.deepEqual(u?.from, ['10.0.0.0/8', '2001:db8::/32']);
    assert.equal(u?.keys.length, 1);
  });

  test('add an OpenSSH ssh-ed25519 line as a second key of the same user', async () => {
    const k = generateUserKeys();
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.from(k.publicKey)]);
    const r = await run('user', 'add', 'alice', '--key', `ssh-ed25519 ${toBase64(blob)} alice@desktop`, '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().users['alice']?.keys.length, 2);
    assert.deepEqual(users().users['alice']?.ports, ['tcp/22', 'udp/51820'], 'policy untouched when no option given');
  });

  test('refusals change nothing: duplicate key, malformed key, unknown user, bad options, unwritable directory', async () => {
    const before = readFileSync(dir.usersPath, 'utf8');
    const cases: [string[], RegExp][] = [
      [['user', 'add', 'carol', '--key', `${dir.dir}/alice.pub`], /already active for user "alice"/],
      [['user', 'add', 'carol', '--key', 'sesame-ed25519 AAAA carol'], /not a user public key/],
      [['user', 'add', 'carol', '--key', `${dir.dir}/nonexistent.pub`], /cannot read/],
      [['user', 'add', 'carol', '--key', `${dir.dir}/bob.pub`, '--ports', 'tcp/0'], /"tcp\/0" is not a port/],
      [['user', 'add', 'carol', '--key', `${dir.dir}/bob.pub`, '--from', '10.0.0.0/99'], /--from: "10.0.0.0\/99" is not an address or CIDR/],
      [['user', 'add', 'carol', '--key', `${dir.dir}/bob.pub`, '--max-duration', '3d'], /--max-duration: expected/],
      [['user', 'add', 'bad name', '--key', `${dir.dir}/bob.pub`], /name "bad name" is not allowed/],
      [['user', 'revoke', 'nobody'], /no user "nobody"/],
      [['user', 'revoke', 'alice', '--key', 'ffffffffff'], /has no active key ffffffffff/],
      [['user', 'frobnicate', 'alice'], /unknown action/],
    ];
    for (const [args, pattern] of cases) {
      const r = await run(...args, '-c', dir.configPath);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, pattern, args.join(' '));
      assert.equal(readFileSync(dir.usersPath, 'utf8'), before, `file changed by: ${args.join(' ')}`);
    }
    chmodSync(dir.dir, 0o500);
    try {
      if (process.getuid?.() !== 0) {
        const r = await run('user', 'add', 'carol', '--key', `${dir.dir}/bob.pub`, '-c', dir.configPath);
        assert.match(r.stderr, /nothing was changed/);
      }
    } finally {
      chmodSync(dir.dir, 0o700);
    }
  });

  test('list and show, as a table and as JSON', async () => {
    await run('user', 'add', 'bob', '--key', `${dir.dir}/bob.pub`, '-c', dir.configPath);
    const table = await run('user', 'list', '-c', dir.configPath);
    assert.match(table.stdout, /^USER\s+STATUS\s+KEYS\s+PORTS/m);
    assert.match(table.stdout, /^alice\s+active\s+\S+,\S+\s+tcp\/22,udp\/51820\s+120s\s+10\.0\.0\.0\/8,2001:db8::\/32$/m);
    const json = JSON.parse((await run('user', 'list', '--json', '-c', dir.configPath)).stdout) as { users: { name: string; keys: { keyId: string }[] }[] };
    assert.deepEqual(json.users.map((u) => u.name), ['alice', 'bob']);
    assert.match(json.users[0]?.keys[0]?.keyId ?? '', /^[0-9a-f]{32}$/);
    const show = await run('user', 'show', 'alice', '-c', dir.configPath);
    assert.match(show.stdout, /user alice\n\s+ports\s+tcp\/22, udp\/51820/);
  });

  test('revoke one key by id prefix, then the rest; the record keeps who, when and why; re-adding needs --force', async () => {
    const json = JSON.parse((await run('user', 'show', 'alice', '--json', '-c', dir.configPath)).stdout) as { keys: { keyId: string }[] };
    const first = json.keys[0]?.keyId ?? '';
    let r = await run('user', 'revoke', 'alice', '--key', first.slice(0, 10), '--reason', 'laptop lost', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().users['alice']?.keys.length, 1);
    assert.equal(users().revoked?.[0]?.reason, 'laptop lost');
    assert.equal(users().revoked?.[0]?.user, 'alice');
    assert.ok((users().revoked?.[0]?.by ?? '') !== '');
    r = await run('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '-c', dir.configPath);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /was revoked on .* \(laptop lost\); re-adding a revoked key needs --force/);
    const listing = await run('user', 'list', '-c', dir.configPath);
    assert.match(listing.stdout, /revoked keys:\nKEY\s+USER\s+AT\s+BY\s+REASON\n\S+\s+alice\s+\S+\s+.*laptop lost/);
    r = await run('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--force', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().revoked?.length ?? 0, 0);
    r = await run('user', 'revoke', 'alice', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().users['alice']?.keys.length, 0, 'the user stays, with no active key');
    assert.equal(users().revoked?.length, 2);
  });

  test('remove revokes the keys and deletes the user; owner and mode of the file are kept', async () => {
    chmodSync(dir.usersPath, 0o640);
    const r = await run('user', 'remove', 'bob', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().users['bob'], undefined);
    assert.ok(users().revoked?.some((x) => x.user === 'bob' && x.reason === 'user removed'));
    assert.equal(statSync(dir.usersPath).mode & 0o777, 0o640);
  });

  test('a users file that is already broken is refused, not rewritten', async () => {
    writeFileSync(dir.usersPath, '{"users": {"x": {"keys": [], "ports": ["tcp/22"], "oops": 1}}}');
    const r = await run('user', 'add', 'carol', '--key', `${dir.dir}/bob.pub`, '-c', dir.configPath);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /users\.json: \/users\/x: unknown key "oops"/);
    assert.match(readFileSync(dir.usersPath, 'utf8'), /oops/);
  });
});

