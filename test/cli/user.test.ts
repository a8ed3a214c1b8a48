// `sesame user ...` run as a real CLI against a temp server directory: edits, listings, refusals that change nothing, revocation record, control characters refused at input and escaped at output.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { LOCK } from '../../src/limits.ts';
import { parseInvitation } from '../../src/client/invite.ts';
import { toBase64 } from '../../src/protocol/bytes.ts';
import { fingerprint, generateUserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { hasControl } from '../../src/text.ts';
import { CLI, makeServerDir } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const runWith = async (env: NodeJS.ProcessEnv | undefined, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await promisify(execFile)(process.execPath, [CLI, ...args], env === undefined ? {} : { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};
const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => runWith(undefined, ...args);

describe('sesame user', () => {
  let dir: ServerDir;
  const users = (): { users: Record<string, { keys: { key: string }[]; ports: string[]; from?: string[]; maxDurationSeconds?: number }>; revoked?: { key: string; user: string; reason?: string; by?: string; reinstated?: { at: string; by?: string } }[] } =>
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
    assert.equal(users().revoked?.length, 1, 'the revocation stays in the record as history');
    assert.match(users().revoked?.[0]?.reinstated?.at ?? '', /^\d{4}-/, 'marked reinstated, with when');
    assert.ok((users().revoked?.[0]?.reinstated?.by ?? '') !== '', 'and by whom');
    assert.match((await run('user', 'show', 'alice', '-c', dir.configPath)).stdout, /laptop lost; reinstated \d{4}-/);
    r = await run('user', 'revoke', 'alice', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().users['alice']?.keys.length, 0, 'the user stays, with no active key');
    assert.equal(users().revoked?.length, 3, 'the history entry and two new revocations');
    assert.equal(users().revoked?.filter((x) => x.reinstated === undefined).length, 2);
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


describe('sesame user set, and edits under the lock', () => {
  let dir: ServerDir;
  const users = (): { users: Record<string, { keys: { key: string }[]; ports: string[]; from?: string[]; maxDurationSeconds?: number; mayOpenOtherAddress?: boolean }>; revoked?: { user: string; keepSessions?: boolean }[] } =>
    JSON.parse(readFileSync(dir.usersPath, 'utf8'));
  before(async () => {
    await loadSodium();
    dir = makeServerDir({ protect: ['tcp/22'] });
    dir.userKey('alice');
  });
  after(() => dir.remove());

  test('set changes a policy without touching keys; --from "" means any source; refusals change nothing', async () => {
    assert.equal((await run('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--may-open-other', '-c', dir.configPath)).code, 0);
    let r = await run('user', 'set', 'alice', '--ports', 'tcp/22,tcp/2222', '--max-duration', '90s', '--from', '10.0.0.0/8', '--no-may-open-other', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /changed user alice: ports tcp\/22, tcp\/2222; max duration 90 s; from 10\.0\.0\.0\/8; may open other no/);
    const a = users().users['alice'];
    assert.deepEqual([a?.ports, a?.maxDurationSeconds, a?.from, a?.mayOpenOtherAddress, a?.keys.length], [['tcp/22', 'tcp/2222'], 90, ['10.0.0.0/8'], false, 1]);
    r = await run('user', 'set', 'alice', '--from', '', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().users['alice']?.from, undefined);
    const before = readFileSync(dir.usersPath, 'utf8');
    for (const [args, expected] of [
      [['user', 'set', 'alice'], /needs at least one of/],
      [['user', 'set', 'nobody', '--ports', 'tcp/22'], /no user "nobody"/],
      [['user', 'set', 'alice', '--may-open-other', '--no-may-open-other'], /exclude each other/],
      [['user', 'set', 'alice', '--ports', 'tcp/99999'], /is not a port/],
    ] as const) {
      const refused = await run(...args, '-c', dir.configPath);
      assert.notEqual(refused.code, 0, args.join(' '));
      assert.match(refused.stderr, expected);
    }
    assert.equal(readFileSync(dir.usersPath, 'utf8'), before);
  });

  test('revoke --keep-sessions is recorded, so a restarted server knows it too', async () => {
    const r = await run('user', 'revoke', 'alice', '--keep-sessions', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(users().revoked?.find((x) => x.user === 'alice')?.keepSessions, true);
  });

  test('20 concurrent revoke + add pairs lose nothing', async () => {
    const pairs = 20;
    const doc = { users: Object.fromEntries(Array.from({ length: pairs }, (_, i) => [`old${i}`, { keys: [{ key: `sesame-ed25519 ${toBase64(generateUserKeys().publicKey)} old${i}` }], ports: ['tcp/22'] }])) };
    writeFileSync(dir.usersPath, JSON.stringify(doc));
    const results = await Promise.all(Array.from({ length: pairs }, (_, i) => [
      run('user', 'revoke', `old${i}`, '-c', dir.configPath),
      run('user', 'add', `new${i}`, '--key', `sesame-ed25519 ${toBase64(generateUserKeys().publicKey)} new${i}`, '-c', dir.configPath),
    ]).flat());
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const after = users();
    for (let i = 0; i < pairs; i++) {
      assert.equal(after.users[`old${i}`]?.keys.length, 0, `old${i} revoked`);
      assert.ok(after.revoked?.some((x) => x.user === `old${i}`), `old${i} has its revocation record`);
      assert.equal(after.users[`new${i}`]?.keys.length, 1, `new${i} added`);
    }
  });

  test('an edit waits for the lock, then fails clearly and changes nothing', async () => {
    // Another editor holds the lock: flock(1) keeps it as long as its command (sleep) runs.
    const holder = spawn('flock', ['--exclusive', '--no-fork', `${dir.usersPath}.lock`, 'sleep', '30'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const before = readFileSync(dir.usersPath, 'utf8');
      const started = performance.now();
      const r = await run('user', 'add', 'late', '--key', `${dir.dir}/alice.pub`, '--force', '-c', dir.configPath);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /is being edited by .*; waited \d+ s, nothing was changed: try again/);
      assert.ok(performance.now() - started >= LOCK.waitSeconds * 1000 - 500, 'it waited before giving up');
      assert.equal(readFileSync(dir.usersPath, 'utf8'), before);
    } finally {
      holder.kill('SIGKILL');
    }
    const r = await run('user', 'add', 'late', '--key', `${dir.dir}/alice.pub`, '--force', '-c', dir.configPath);
    assert.equal(r.code, 0, `the lock is free once its holder is gone: ${r.stderr}`);
  });
});


describe('sesame user and control characters', () => {
  let dir: ServerDir;
  const line = (comment: string): string => `sesame-ed25519 ${toBase64(generateUserKeys().publicKey)} ${comment}`;
  /** An OSC window title, then cursor up and text that would overwrite the line above. */
  const OSC = '\u001b]0;owned\u0007';
  const UP = '\u001b[1A';
  before(async () => {
    await loadSodium();
    dir = makeServerDir({ protect: ['tcp/22'] });
    dir.userKey('alice');
  });
  after(() => dir.remove());

  test('refused at input, naming the field: NAME, --reason, --key line, a .pub comment, SUDO_USER; nothing changes', async () => {
    assert.equal((await run('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '-c', dir.configPath)).code, 0);
    writeFileSync(`${dir.dir}/evil.pub`, `${line(`carol${OSC}${UP}alice  active`)}\n`);
    const before = readFileSync(dir.usersPath, 'utf8');
    const cases: [NodeJS.ProcessEnv | undefined, string[], RegExp, number][] = [
      [undefined, ['user', 'add', `ca\u001brol`, '--key', line('carol')], /the user NAME holds control characters \("ca\\x1brol"\)/, 2],
      [undefined, ['user', 'add', 'carol', '--key', `${dir.dir}/evil.pub`], /the key comment holds control characters \("carol\\x1b\]0;owned\\x07\\x1b\[1Aalice  active"\)/, 4],
      [undefined, ['user', 'add', 'carol', '--key', line('carol\u009b2J')], /--key holds control characters \(".* carol\\x9b2J"\)/, 2],
      [undefined, ['user', 'add', 'carol', '--key', line('\u202eoknaht')], /--key holds control characters \(".* \\u\{202e\}oknaht"\)/, 2],
      [undefined, ['user', 'revoke', 'alice', '--reason', `lost${OSC}`], /--reason holds control characters \("lost\\x1b\]0;owned\\x07"\)/, 2],
      [undefined, ['user', 'remove', 'alice', '--reason', 'line one\nline two'], /--reason holds control characters \("line one\\x0aline two"\)/, 2],
      [undefined, ['user', 'show', `al\u2066ice`], /the user NAME holds control characters/, 2],
      [{ ...process.env, SUDO_USER: `root${UP}` }, ['user', 'revoke', 'alice'], /the editing user's name \(SUDO_USER or the login name\) holds control characters \("root\\x1b\[1A \(via sudo\)"\)/, 2],
    ];
    for (const [env, args, pattern, code] of cases) {
      const r = await runWith(env, ...args, '-c', dir.configPath);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.equal(hasControl(r.stderr.replace(/\n/g, '')), false, `the error itself is printable: ${args.join(' ')}`);
      assert.equal(readFileSync(dir.usersPath, 'utf8'), before, `file changed by: ${args.join(' ')}`);
    }
  });

  test('list and show print what a hand edit put in the file escaped; --json stays lossless and holds no raw C1 or bidi', async () => {
    const comment = `alice${OSC}${UP}\u009b2J\u202etxt.exe`;
    const reason = `lost\u001b[31m red`;
    const revokedComment = `old\u2067key`;
    dir.writeUsers(
      { alice: { keys: [{ key: line(comment), added: `2024-01-01\u001b[2K` }], ports: ['tcp/22'] } },
      [{ key: line(revokedComment), user: 'alice', at: '2024-02-02T00:00:00Z', by: `root\u0085`, reason }, { key: line('x'), user: `ghost${UP}`, at: '2024-03-03T00:00:00Z' }],
    );
    const escaped = ['alice\\x1b]0;owned\\x07\\x1b[1A\\x9b2J\\u{202e}txt.exe', 'lost\\x1b[31m red', 'root\\x85', 'old\\u{2067}key', '2024-01-01\\x1b[2K'];
    const list = await run('user', 'list', '-c', dir.configPath);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(hasControl(list.stdout.replace(/\n/g, '')), false, 'no raw ESC, C1 or bidi in the list');
    assert.match(list.stdout, /^\S+\s+ghost\\x1b\[1A\s+2024-03-03/m);
    assert.ok(list.stdout.includes('root\\x85') && list.stdout.includes('lost\\x1b[31m red'), list.stdout);
    const show = await run('user', 'show', 'alice', '-c', dir.configPath);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(hasControl(show.stdout.replace(/\n/g, '')), false, 'no raw ESC, C1 or bidi in show');
    for (const e of escaped) assert.ok(show.stdout.includes(e), `show has ${e}:\n${show.stdout}`);
    for (const args of [['list', '--json'], ['show', 'alice', '--json']]) {
      const r = await run('user', ...args, '-c', dir.configPath);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(hasControl(r.stdout.replace(/\n/g, '')), false, `no raw control in ${args.join(' ')}`);
      const text = JSON.stringify(JSON.parse(r.stdout));
      for (const original of [comment, reason, revokedComment]) assert.ok(text.includes(JSON.stringify(original).slice(1, -1)), `${args.join(' ')} keeps ${JSON.stringify(original)}`);
    }
  });
});


describe('sesame user invite, and add --host', () => {
  let dir: ServerDir;
  before(async () => {
    await loadSodium();
    dir = makeServerDir({ protect: ['tcp/22'], knockPort: 4000 });
    dir.userKey('alice');
    assert.equal((await run('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--ports', 'tcp/22,udp/51820', '-c', dir.configPath)).code, 0);
  });
  after(() => dir.remove());

  test('in a pipe: stdout is the bare line, holding the host, the knock port, the server\'s public key and the user\'s ports', async () => {
    const r = await run('user', 'invite', 'alice', '--host', 'Bastion.Example.org', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^sesame-invite:1:\S+\n$/);
    const inv = parseInvitation(r.stdout);
    assert.ok(inv.ok, inv.ok ? '' : inv.reason);
    assert.deepEqual({ ...inv.value, serverKeys: inv.value.serverKeys.map(toBase64) }, {
      host: 'bastion.example.org',
      knockPort: 4000,
      access: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }],
      serverKeys: [toBase64(dir.serverKeys.publicKey)],
    });
    assert.doesNotMatch(r.stdout, /secret/i);
    const natted = await run('user', 'invite', 'alice', '--host', '203.0.113.9', '--knock-port', '40000', '-c', dir.configPath);
    const back = parseInvitation(natted.stdout);
    assert.ok(back.ok && back.value.knockPort === 40000 && back.value.host === '203.0.113.9', natted.stdout + natted.stderr);
  });

  test('--qr adds the QR code in a pipe too; on a terminal (script) the line comes with how to use it and the QR code', async (t) => {
    const qr = await run('user', 'invite', 'alice', '--host', 'ssh.example.com', '--qr', '-c', dir.configPath);
    assert.equal(qr.code, 0, qr.stderr);
    const [first, blank, ...code] = qr.stdout.split('\n');
    assert.ok(parseInvitation(first ?? '').ok);
    assert.equal(blank, '');
    assert.ok(code.length > 10 && code.every((l) => /^[█▀▄ ]*$/.test(l)), qr.stdout);
    const hasScript = await promisify(execFile)('script', ['--version']).then(() => true, () => false);
    if (!hasScript) {
      t.skip('script(1) from util-linux is not installed');
      return;
    }
    const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, CLI, 'user', 'invite', 'alice', '--host', 'ssh.example.com', '-c', dir.configPath].map(quote).join(' ');
    const tty = await promisify(execFile)('script', ['-qec', command, '/dev/null']);
    const out = tty.stdout.replace(/\r\n/g, '\n');
    assert.match(out, /^sesame-invite:1:\S+\n/);
    assert.match(out, /Give this line to alice: it holds no secret\. On their machine: sesame profile import LINE/);
    assert.ok(out.includes(fingerprint(dir.serverKeys.publicKey)));
    assert.match(out, /[▀▄]/);
    assert.match(out, /█{20}/);
  });

  test('add --host prints the invitation after the message; refusals (no --host, bad --host, bad --knock-port, --qr alone, unknown user) change nothing', async () => {
    dir.userKey('bob');
    const before = readFileSync(dir.usersPath, 'utf8');
    const cases: [string[], number, RegExp][] = [
      [['user', 'invite', 'alice'], 2, /sesame user invite needs --host HOST/],
      [['user', 'invite', 'nobody', '--host', 'ssh.example.com'], 3, /no user "nobody"/],
      [['user', 'add', 'bob', '--key', `${dir.dir}/bob.pub`, '--host', 'ssh..example.com'], 2, /--host: "ssh..example.com" is not a host name/],
      [['user', 'add', 'bob', '--key', `${dir.dir}/bob.pub`, '--host', 'ssh.example.com', '--knock-port', '0'], 2, /--knock-port "0": expected a port number/],
      [['user', 'add', 'bob', '--key', `${dir.dir}/bob.pub`, '--qr'], 2, /--qr is for the invitation, which needs --host HOST/],
    ];
    for (const [args, code, pattern] of cases) {
      const r = await run(...args, '-c', dir.configPath);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.equal(readFileSync(dir.usersPath, 'utf8'), before, `file changed by: ${args.join(' ')}`);
    }
    const r = await run('user', 'add', 'bob', '--key', `${dir.dir}/bob.pub`, '--host', 'ssh.example.com', '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    const [message, invitation, end] = r.stdout.split('\n');
    assert.match(message ?? '', /^added user bob/);
    const inv = parseInvitation(invitation ?? '');
    assert.ok(inv.ok && inv.value.access.length === 1 && inv.value.access[0]?.port === 22, r.stdout);
    assert.equal(end, '');
  });
});

describe('publicHost in the config stands in for --host', () => {
  let dir: ServerDir;
  before(async () => {
    await loadSodium();
    dir = makeServerDir({ protect: ['tcp/22'], publicHost: 'Bastion.Example.org' });
  });
  after(() => dir.remove());

  test('add prints the invitation with publicHost; invite needs no --host; --host still wins', async () => {
    dir.userKey('carol');
    const r = await run('user', 'add', 'carol', '--key', `${dir.dir}/carol.pub`, '-c', dir.configPath);
    assert.equal(r.code, 0, r.stderr);
    const [message, invitation] = r.stdout.split('\n');
    assert.match(message ?? '', /^added user carol/);
    const added = parseInvitation(invitation ?? '');
    assert.ok(added.ok && added.value.host === 'bastion.example.org', r.stdout);
    const again = parseInvitation((await run('user', 'invite', 'carol', '-c', dir.configPath)).stdout);
    assert.ok(again.ok && again.value.host === 'bastion.example.org');
    const other = parseInvitation((await run('user', 'invite', 'carol', '--host', '203.0.113.9', '-c', dir.configPath)).stdout);
    assert.ok(other.ok && other.value.host === '203.0.113.9');
  });

  test('a publicHost that is not a host name is refused at load, naming the field', async () => {
    const bad = makeServerDir({ protect: ['tcp/22'], publicHost: 'ssh..example.com' });
    try {
      bad.userKey('dave');
      const r = await run('user', 'add', 'dave', '--key', `${bad.dir}/dave.pub`, '-c', bad.configPath);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /\/publicHost: "ssh\.\.example\.com" is not a host name/);
    } finally {
      bad.remove();
    }
  });
});
