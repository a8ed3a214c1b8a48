// `sesame profile import` run as a real CLI: the invitation round trip from `user add --host` to a knock the server code accepts, key rotation, and refusals that write nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { knock } from '../../src/cli/knock.ts';
import { checkOf, parseInvitation } from '../../src/client/invite.ts';
import { EXIT } from '../../src/errors.ts';
import { fromHex, toHex } from '../../src/protocol/bytes.ts';
import { formatKeyLine, KEY_TYPE, writeKeyPair } from '../../src/protocol/keyfile.ts';
import { deriveKeyId, fingerprint, generateServerKeys } from '../../src/protocol/keys.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, makeServerDir } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { checkKnock } from '../helpers/verdict.ts';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const work = mkdtempSync(join(tmpdir(), 'sesame-profile-cli-'));
const env = { ...process.env, XDG_CONFIG_HOME: join(work, 'xdg') };

async function run(...args: string[]): Promise<Run> {
  try {
    const r = await promisify(execFile)(process.execPath, [CLI, ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let n = 0;
const configPath = (): string => join(work, `client-${++n}.json`);
const readJson = (path: string): { $schema?: string; profiles: Record<string, Record<string, unknown>> } => JSON.parse(readFileSync(path, 'utf8'));

/** Knocks in-process with --print-packet and checks the packet as the server's packet path would. */
async function knockVerdict(profileOrHost: string, config: string, identity: string, server: ServerKeys, user: UserKeys): Promise<string[]> {
  let out = '';
  let err = '';
  const code = await knock([profileOrHost, '--config', config, '-i', identity, '--print-packet'], { out: (t) => void (out += t), err: (t) => void (err += t) });
  assert.equal(code, EXIT.ok, err);
  const id = deriveKeyId(user.publicKey);
  const r = checkKnock(fromHex(out.trim()) ?? assert.fail('not hex'), {
    server,
    lookup: (k) => (toHex(k) === toHex(id) ? { keyId: id, publicKey: user.publicKey, user: 'alice', revoked: false } : undefined),
    nowMs: Date.now(),
    windowMs: 30_000,
  });
  assert.ok(r.ok, r.ok ? '' : `the server refuses the knock: ${r.reason}`);
  return r.value.payload.access.map((a) => `${a.proto}/${a.port}`);
}

let dir: ServerDir;
let alice: UserKeys;
let line = '';

before(async () => {
  await loadSodium();
  process.env['XDG_CONFIG_HOME'] = join(work, 'xdg-in-process');
  dir = makeServerDir({ protect: ['tcp/22'] });
  alice = dir.userKey('alice');
});
after(() => {
  dir.remove();
  rmSync(work, { recursive: true, force: true });
});

describe('the invitation round trip', () => {
  test('user add --host prints the line; profile import writes the profile; its knock verifies against the server key, for the user\'s ports', async () => {
    const added = await run('user', 'add', 'alice', '--key', join(dir.dir, 'alice.pub'), '--ports', 'tcp/22,udp/51820', '--host', 'SSH.example.com', '-c', dir.configPath);
    assert.equal(added.code, 0, added.stderr);
    const m = /^added user alice[^\n]*\n(sesame-invite:1:\S+)\n$/.exec(added.stdout);
    assert.ok(m?.[1] !== undefined, `stdout in a pipe is the message, then the bare line:\n${added.stdout}`);
    line = m[1];
    const config = configPath();
    const imported = await run('profile', 'import', line, '--config', config);
    assert.equal(imported.code, 0, imported.stderr);
    assert.ok(imported.stdout.includes(fingerprint(dir.serverKeys.publicKey)), 'prints the server key fingerprint to compare');
    assert.match(imported.stdout, /ProxyCommand sesame ssh-proxy %n %p/);
    const doc = readJson(config);
    assert.match(doc.$schema ?? '', /^file:.*\/src\/schema\/client\.schema\.json$/);
    assert.deepEqual(doc.profiles['ssh.example.com'], {
      host: 'ssh.example.com',
      knockPort: 62201,
      serverKeys: [formatKeyLine(KEY_TYPE.serverPublic, dir.serverKeys.publicKey, 'ssh.example.com').trim()],
      ports: ['tcp/22', 'udp/51820'],
    });
    assert.equal(statSync(config).mode & 0o777, 0o600);
    assert.deepEqual(await knockVerdict('ssh.example.com', config, join(dir.dir, 'alice'), dir.serverKeys, alice), ['tcp/22', 'udp/51820']);
  });

  test('--name names the profile after an ssh alias; the host name finds it too (ssh\'s %h)', async () => {
    const config = configPath();
    const r = await run('profile', 'import', line, '--name', 'prod', '--config', config);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Host prod\n\s+HostName ssh\.example\.com\n\s+ProxyCommand sesame ssh-proxy %n %p/);
    assert.deepEqual(Object.keys(readJson(config).profiles), ['prod']);
    assert.deepEqual(await knockVerdict('prod', config, join(dir.dir, 'alice'), dir.serverKeys, alice), ['tcp/22', 'udp/51820']);
    assert.deepEqual(await knockVerdict('ssh.example.com', config, join(dir.dir, 'alice'), dir.serverKeys, alice), ['tcp/22', 'udp/51820']);
  });

  test('without --config: $XDG_CONFIG_HOME/sesame/config.json, created with its directory (0700) and mode 0600', async () => {
    const r = await run('profile', 'import', line);
    assert.equal(r.code, 0, r.stderr);
    const file = join(env.XDG_CONFIG_HOME, 'sesame', 'config.json');
    assert.deepEqual(Object.keys(readJson(file).profiles), ['ssh.example.com']);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(env.XDG_CONFIG_HOME, 'sesame')).mode & 0o777, 0o700);
  });

  test('a server with two keys (serverKeys): the invitation carries both, in order; the profile lists both; knocks use the first', async () => {
    const second = generateServerKeys();
    writeKeyPair(join(dir.dir, 'second.key'), formatKeyLine(KEY_TYPE.serverSecret, second.secretKey, 'second'), formatKeyLine(KEY_TYPE.serverPublic, second.publicKey, 'second'), true);
    const rotated = join(dir.dir, 'rotated.json');
    writeFileSync(rotated, JSON.stringify({ serverKeys: ['second.key', 'server.key'], usersFile: 'users.json', stateDir: 'state', protect: ['tcp/22'] }));
    const r = await run('user', 'invite', 'alice', '--host', 'ssh.example.com', '-c', rotated);
    assert.equal(r.code, 0, r.stderr);
    const inv = parseInvitation(r.stdout);
    assert.ok(inv.ok, r.stdout);
    assert.deepEqual(inv.value.serverKeys.map(toHex), [toHex(second.publicKey), toHex(dir.serverKeys.publicKey)]);
    const config = configPath();
    assert.equal((await run('profile', 'import', r.stdout.trim(), '--config', config)).code, 0);
    const keys = readJson(config).profiles['ssh.example.com']?.['serverKeys'];
    assert.ok(Array.isArray(keys) && keys.length === 2, JSON.stringify(keys));
    assert.deepEqual(await knockVerdict('ssh.example.com', config, join(dir.dir, 'alice'), second, alice), ['tcp/22', 'udp/51820']);
  });
});

describe('refusals write nothing', () => {
  const sealed = (body: string): string => `${body},${checkOf(body)}`;
  const body = (): string => line.slice(0, line.lastIndexOf(','));

  test('tampered, wrong version, bad host, bad ports, bad key, bad name, an existing profile without --force; and no file is created', async () => {
    const config = configPath();
    writeFileSync(config, `${JSON.stringify({ profiles: { 'ssh.example.com': { host: 'old.example.com', serverKey: 'old.pub' }, other: { knockPort: 9 } } }, null, 4)}\n`);
    const before = readFileSync(config, 'utf8');
    const key = body().split(',')[3] ?? '';
    const cases: [string, string[], number, RegExp][] = [
      ['1 tampered key', [line.replace(key, `${key[0] === 'A' ? 'B' : 'A'}${key.slice(1)}`)], EXIT.usage, /invitation: check: the line is damaged or incomplete/],
      ['2 cut short', [line.slice(0, -10)], EXIT.usage, /invitation: check:/],
      ['3 version 2', [sealed(body().replace(':1:', ':2:'))], EXIT.usage, /invitation: version: this is a version 2 invitation/],
      ['4 bad knock port', [sealed(body().replace(',62201,', ',65536,'))], EXIT.usage, /invitation: knock port: "65536" is not a port number/],
      ['5 bad port', [sealed(body().replace('udp/51820', 'udp/0'))], EXIT.usage, /invitation: ports\[1\]: "udp\/0"/],
      ['6 bad key', [sealed(body().replace(key, key.slice(1)))], EXIT.usage, /invitation: server keys\[0\]: .* is not 43 characters/],
      ['7 bad host', [sealed(body().replace('ssh.example.com', 'ssh..example.com'))], EXIT.usage, /invitation: host: "ssh..example.com" is not a host name/],
      ['8 not an invitation', ['ssh.example.com'], EXIT.usage, /invitation: not a sesame invitation/],
      ['9 an IPv6 host needs --name', [sealed(body().replace('ssh.example.com', '2001:db8::1'))], EXIT.usage, /the host 2001:db8::1 cannot name a profile: pass --name NAME/],
      ['10 a bad --name', [line, '--name=-x'], EXIT.usage, /--name "-x": expected letters/],
      ['11 an existing profile', [line], EXIT.config, /already has a profile "ssh.example.com"; not replacing it \(--force replaces/],
      ['12 two lines', [line, line], EXIT.usage, /expected one invitation LINE/],
    ];
    for (const [name, args, code, expected] of cases) {
      const r = await run('profile', 'import', ...args, '--config', config);
      assert.equal(r.code, code, `${name}: ${r.stderr}`);
      assert.match(r.stderr, expected, name);
      assert.equal(readFileSync(config, 'utf8'), before, `${name}: the file changed`);
    }
    const absent = join(work, 'absent', 'config.json');
    const r = await run('profile', 'import', sealed(body().replace(',62201,', ',0,')), '--config', absent);
    assert.equal(r.code, EXIT.usage);
    assert.equal(existsSync(join(work, 'absent')), false, 'no file or directory created');
  });

  test('a config that does not load is refused, not rewritten', async () => {
    const config = configPath();
    writeFileSync(config, '{"profiles": {"x": {"hots": "typo"}}}');
    const r = await run('profile', 'import', line, '--config', config);
    assert.equal(r.code, EXIT.config);
    assert.match(r.stderr, /profiles\.x\.hots: unknown key/);
    assert.equal(readFileSync(config, 'utf8'), '{"profiles": {"x": {"hots": "typo"}}}');
  });
});

describe('--force and other profiles', () => {
  test('--force replaces what the invitation sets, keeps your own settings and every other profile; the mode stays', async () => {
    const config = configPath();
    const other = { host: 'lab.example.org', serverKey: 'lab.pub', ports: ['tcp/2222'] };
    writeFileSync(config, JSON.stringify({ profiles: { 'ssh.example.com': { host: 'old.example.com', serverKey: 'old.pub', identity: '~/id_work', durationSeconds: 30, ports: ['tcp/1'] }, lab: other } }), { mode: 0o640 });
    const r = await run('profile', 'import', line, '--config', config, '--force');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^replaced profile "ssh.example.com"/);
    assert.doesNotMatch(r.stdout, /no identity key/, 'the profile names its own identity');
    const doc = readJson(config);
    assert.deepEqual(doc.profiles['lab'], other);
    assert.deepEqual(doc.profiles['ssh.example.com'], {
      host: 'ssh.example.com',
      identity: '~/id_work',
      durationSeconds: 30,
      ports: ['tcp/22', 'udp/51820'],
      knockPort: 62201,
      serverKeys: [formatKeyLine(KEY_TYPE.serverPublic, dir.serverKeys.publicKey, 'ssh.example.com').trim()],
    });
    assert.equal(doc.$schema, undefined, 'an existing file gets no $schema it did not have');
    assert.equal(statSync(config).mode & 0o777, 0o640);
  });

  test('a config that is a symbolic link is written where it points; the link stays', async () => {
    const target = configPath();
    writeFileSync(target, JSON.stringify({ profiles: {} }));
    const link = join(work, 'linked.json');
    symlinkSync(target, link);
    const r = await run('profile', 'import', line, '--config', link);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.deepEqual(Object.keys(readJson(target).profiles), ['ssh.example.com']);
  });
});
