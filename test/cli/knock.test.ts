// `sesame knock` and `sesame ssh-proxy` on 127.0.0.1: packets the server code accepts, real UDP knocks, --wait outcomes, the relay, and one exit code per error.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromHex, toHex } from '../../src/protocol/bytes.ts';
import { checkKnock } from '../helpers/verdict.ts';
import type { CheckContext } from '../helpers/verdict.ts';
import { knock, sshProxy } from '../../src/cli/knock.ts';
import { EXIT, OperatorError } from '../../src/errors.ts';
import { formatKeyLine, KEY_TYPE, sshFingerprint, writeKeyPair } from '../../src/protocol/keyfile.ts';
import { deriveKeyId, fingerprint, generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import type { ServerKeys, UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import type { VerifiedKnock } from '../helpers/verdict.ts';

const dir = mkdtempSync(join(tmpdir(), 'sesame-knock-'));
const identity = join(dir, 'id_ed25519');
const serverPub = join(dir, 'server.pub');
let server: ServerKeys;
let user: UserKeys;

before(async () => {
  // Keep the real ~/.config/sesame out of the tests: default identity and config both live under here.
  process.env['XDG_CONFIG_HOME'] = join(dir, 'xdg');
  await loadSodium();
  server = generateServerKeys();
  user = generateUserKeys();
  writeKeyPair(identity, formatKeyLine(KEY_TYPE.userSecret, user.secretKey.subarray(0, 32), 'alice'), formatKeyLine(KEY_TYPE.userPublic, user.publicKey, 'alice'), false);
  writeKeyPair(join(dir, 'server.key'), formatKeyLine(KEY_TYPE.serverSecret, server.secretKey, 'srv'), formatKeyLine(KEY_TYPE.serverPublic, server.publicKey, 'srv'), false);
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Calls a command as cli.ts does: operator errors and parseArgs errors become their exit code and message. */
async function run(command: typeof knock, argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  try {
    return { code: await command(argv, io), out, err };
  } catch (e) {
    if (e instanceof OperatorError) return { code: e.exitCode, out, err: err + e.message };
    if (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS')) return { code: EXIT.usage, out, err: err + e.message };
    throw e;
  }
}

const keyArgs = (): string[] => ['-i', identity, '--server-key', serverPub];

function verdict(packet: Uint8Array): VerifiedKnock {
  const id = deriveKeyId(user.publicKey);
  const ctx: CheckContext = {
    server,
    lookup: (k) => (toHex(k) === toHex(id) ? { keyId: id, publicKey: user.publicKey, user: 'alice', revoked: false } : undefined),
    nowMs: Date.now(),
    windowMs: 30_000,
  };
  const r = checkKnock(packet, ctx);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

const ports = (k: VerifiedKnock): string[] => k.payload.access.map((a) => `${a.proto}/${a.port}`);

/** A UDP socket standing in for the server's knock port; collects what arrives. */
async function knockPort(host = '127.0.0.1'): Promise<{ socket: UdpSocket; port: number; packets: Uint8Array[] }> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const packets: Uint8Array[] = [];
  socket.on('message', (m) => packets.push(new Uint8Array(m)));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, resolve);
  });
  return { socket, port: socket.address().port, packets };
}

async function listen(handler: (s: Socket) => void, host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const srv = createServer(handler);
  await new Promise<void>((resolve) => srv.listen(0, host, resolve));
  const address: AddressInfo | string | null = srv.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server: srv, port: address.port };
}

/** A port nothing listens on: bind, note, close. Connecting to it gets a reset. */
async function closedPort(): Promise<number> {
  const { server: srv, port } = await listen(() => undefined);
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * A port that drops SYNs, as a firewall does: a listener in a child whose event loop is blocked, so it never
 * accepts, with its accept queue filled first. Loopback has no other way to make a connect time out.
 */
async function droppingPort(): Promise<{ port: number; close: () => void }> {
  const child = spawn(process.execPath, ['-e', `const s = require('net').createServer().listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
    process.stdout.write(s.address().port + '\\n');
    setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000), 20);
  });`]);
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  await new Promise((r) => setTimeout(r, 100));
  const fillers: Socket[] = [];
  for (let i = 0; i < 8; i++) {
    const s = connect({ host: '127.0.0.1', port });
    fillers.push(s);
    const connected = await new Promise<boolean>((resolve) => {
      s.once('connect', () => resolve(true));
      s.once('error', () => resolve(false));
      setTimeout(() => resolve(false), 300);
    });
    if (!connected) break;
  }
  return { port, close: () => { for (const s of fillers) s.destroy(); child.kill(); } };
}

describe('--print-packet', () => {
  test('prints one hex packet that the server code accepts, with the requested ports, duration and open address', async () => {
    const r = await run(knock, ['example.invalid', ...keyArgs(), '-p', 'tcp/22,udp/51820', '-d', '90', '--open', '2001:db8::42', '--print-packet']);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.match(r.out, /^[0-9a-f]+\n$/);
    const k = verdict(fromHex(r.out.trim()) ?? assert.fail('not hex'));
    assert.equal(k.key.user, 'alice');
    assert.deepEqual(ports(k), ['tcp/22', 'udp/51820']);
    assert.equal(k.payload.durationSeconds, 90);
    assert.equal(k.payload.openAddress?.text, '2001:db8::42');
    assert.ok(Math.abs(k.payload.timestampMs - Date.now()) < 5_000);
  });

  test('--verbose names the identity and the server key with their fingerprints, on stderr only', async () => {
    const r = await run(knock, ['example.invalid', ...keyArgs(), '--print-packet', '-v']);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.match(r.out, /^[0-9a-f]+\n$/, 'stdout still carries only the packet');
    assert.ok(r.err.includes(`identity: file ${identity} (sesame private key; ${fingerprint(user.publicKey)}, ssh-add -l: ${sshFingerprint(user.publicKey)}, key id ${toHex(deriveKeyId(user.publicKey))})`), r.err);
    assert.ok(r.err.includes(`server key ${fingerprint(server.publicKey)} (${serverPub})`), r.err);
    assert.equal((await run(knock, ['example.invalid', ...keyArgs(), '--print-packet'])).err, '', 'quiet without it');
  });

  test('defaults: tcp/22, no duration, no open address; every packet is fresh', async () => {
    const a = await run(knock, ['example.invalid', ...keyArgs(), '--print-packet']);
    const b = await run(knock, ['example.invalid', ...keyArgs(), '--print-packet']);
    const k = verdict(fromHex(a.out.trim()) ?? assert.fail('not hex'));
    assert.deepEqual(ports(k), ['tcp/22']);
    assert.equal(k.payload.durationSeconds, undefined);
    assert.equal(k.payload.openAddress, undefined);
    assert.notEqual(a.out, b.out);
  });

  test('a profile supplies host, keys (relative to the config file), ports and duration', async () => {
    const cfgDir = join(dir, 'cfg');
    mkdirSync(cfgDir, { recursive: true });
    const config = join(cfgDir, 'config.json');
    writeFileSync(config, JSON.stringify({ profiles: { lab: { host: 'lab.invalid', serverKey: '../server.pub', identity: '../id_ed25519', ports: ['udp/51820', 'tcp/2222'], durationSeconds: 45 } } }));
    const r = await run(knock, ['lab', '--config', config, '--print-packet']);
    assert.equal(r.code, EXIT.ok, r.err);
    const k = verdict(fromHex(r.out.trim()) ?? assert.fail('not hex'));
    assert.deepEqual(ports(k), ['tcp/2222', 'udp/51820'], 'in the canonical order: tcp before udp, then by port');
    assert.equal(k.payload.durationSeconds, 45);
    const flagged = await run(knock, ['lab', '--config', config, '--print-packet', '-p', 'tcp/443', '-d', '5']);
    const f = verdict(fromHex(flagged.out.trim()) ?? assert.fail('not hex'));
    assert.deepEqual(ports(f), ['tcp/443']);
    assert.equal(f.payload.durationSeconds, 5);
  });
});

describe('sending', () => {
  test('a real UDP knock arrives at the knock port and verifies', async () => {
    const kp = await knockPort();
    try {
      const r = await run(knock, ['127.0.0.1', ...keyArgs(), '--knock-port', String(kp.port), '-p', 'tcp/2222']);
      assert.equal(r.code, EXIT.ok, r.err);
      assert.match(r.err, /knocked 127\.0\.0\.1/);
      assert.equal(r.out, '');
      for (let i = 0; i < 50 && kp.packets.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
      assert.equal(kp.packets.length, 1);
      assert.deepEqual(ports(verdict(kp.packets[0] ?? assert.fail())), ['tcp/2222']);
    } finally {
      kp.socket.close();
    }
  });

  test('IPv6: knock and --wait on ::1 with -6', async (t) => {
    const kp = await knockPort('::1').catch(() => undefined);
    if (kp === undefined) return t.skip('no IPv6 loopback here');
    const { server: srv, port } = await listen((s) => s.destroy(), '::1');
    try {
      const r = await run(knock, ['::1', '-6', ...keyArgs(), '--knock-port', String(kp.port), '-p', `tcp/${port}`, '--wait']);
      assert.equal(r.code, EXIT.notConfirmed, r.err); // reachable; no sesame here to confirm (test/e2e/confirm.test.ts has the confirmed case)
      assert.equal(kp.packets.length, 1);
      assert.deepEqual(ports(verdict(kp.packets[0] ?? assert.fail())), [`tcp/${port}`]);
      assert.equal((await run(knock, ['::1', '-4', ...keyArgs(), '--knock-port', String(kp.port)])).code, EXIT.usage);
    } finally {
      srv.close();
      kp.socket.close();
    }
  });

  test('a host name resolves (localhost)', async () => {
    const kp = await knockPort();
    try {
      const r = await run(knock, ['localhost', '-4', ...keyArgs(), '--knock-port', String(kp.port)]);
      assert.equal(r.code, EXIT.ok, r.err);
    } finally {
      kp.socket.close();
    }
  });
});

describe('--wait', () => {
  test('a reachable port with no confirmation (no sesame on loopback: the host resets the whole range, the control port too): EXIT.notConfirmed at once, never exit 0', async () => {
    const kp = await knockPort();
    const { server: srv, port } = await listen((s) => s.destroy());
    try {
      const started = Date.now();
      const r = await run(knock, ['127.0.0.1', ...keyArgs(), '--knock-port', String(kp.port), '-p', `udp/53,tcp/${port}`, '--wait', '--confirm-ports', '40100-40101']);
      assert.equal(r.code, EXIT.notConfirmed, r.err);
      assert.ok(Date.now() - started < 1_000);
      assert.match(r.err, new RegExp(`tcp/${port} on 127\\.0\\.0\\.1 .*is reachable, but the server did NOT confirm this knock`));
      assert.match(r.err, /also answered a port of 40100-40101 this knock did not name/);
      assert.equal(kp.packets.length, 1);
      const c = verdict(kp.packets[0] ?? assert.fail()).payload.confirmPort;
      assert.ok(c === 40100 || c === 40101, `the knock names a port of --confirm-ports, got ${c}`);
    } finally {
      srv.close();
      kp.socket.close();
    }
  });

  test('a reset (nothing listening) is reported at once as "port reachable but nothing listening"', async () => {
    const port = await closedPort();
    const started = Date.now();
    const r = await run(knock, ['127.0.0.1', ...keyArgs(), '--knock-port', '9', '-p', `tcp/${port}`, '--wait', '--timeout', '3']);
    assert.equal(r.code, EXIT.notOpened);
    assert.match(r.err, /port reachable but nothing listening/);
    assert.ok(Date.now() - started < 1_000);
  });

  test('a port that never opens: EXIT.notOpened after --timeout, the likely causes listed, fresh re-knocks sent', async () => {
    const kp = await knockPort();
    const dropping = await droppingPort();
    try {
      const started = Date.now();
      const r = await run(knock, ['127.0.0.1', ...keyArgs(), '--knock-port', String(kp.port), '-p', `tcp/${dropping.port}`, '--wait', '--timeout', '2.7']);
      const tookMs = Date.now() - started;
      assert.equal(r.code, EXIT.notOpened, r.err);
      assert.ok(tookMs >= 2_600 && tookMs < 4_000, `took ${tookMs} ms`);
      for (const cause of ['did not open within 2.7 s', 'clock skew', '±30 s', 'UTC', 'wrong server key', serverPub, 'not authorized', 'revoked', 'firewall', 'UDP to port', 'wrong knock port']) {
        assert.ok(r.err.includes(cause), `${cause} not in:\n${r.err}`);
      }
      assert.ok(r.err.includes(toHex(deriveKeyId(user.publicKey))), 'the key id helps the admin find the key');
      // Knocks at 0, ~1 s and ~2.5 s: each one new (nonce, timestamp, ephemeral key), each valid.
      assert.equal(kp.packets.length, 3);
      assert.equal(new Set(kp.packets.map((p) => toHex(p))).size, 3);
      for (const p of kp.packets) assert.deepEqual(ports(verdict(p)), [`tcp/${dropping.port}`]);
    } finally {
      dropping.close();
      kp.socket.close();
    }
  });
});

describe('errors: one exit code each, with what to do', () => {
  test('no identity key at the default path: EXIT.key, says to run sesame keygen', async () => {
    const r = await run(knock, ['example.invalid', '--server-key', serverPub, '--print-packet']);
    assert.equal(r.code, EXIT.key);
    assert.match(r.err, /no identity key at .*xdg\/sesame\/id_ed25519/);
    assert.match(r.err, /sesame keygen/);
  });

  test('-i FILE that does not exist: EXIT.key, says to run sesame keygen', async () => {
    const r = await run(knock, ['example.invalid', '-i', join(dir, 'nope'), '--server-key', serverPub, '--print-packet']);
    assert.equal(r.code, EXIT.key);
    assert.match(r.err, /sesame keygen/);
  });

  test('an identity others can read (0644) is refused: EXIT.key', async () => {
    const open = join(dir, 'id_open');
    writeKeyPair(open, formatKeyLine(KEY_TYPE.userSecret, user.secretKey.subarray(0, 32), 'alice'), formatKeyLine(KEY_TYPE.userPublic, user.publicKey, 'alice'), false);
    chmodSync(open, 0o644);
    const r = await run(knock, ['example.invalid', '-i', open, '--server-key', serverPub, '--print-packet']);
    assert.equal(r.code, EXIT.key);
    assert.match(r.err, /too open/);
    assert.match(r.err, /chmod 600/);
  });

  test('no server key: EXIT.key, says to get it from the admin and pass --server-key or set a profile', async () => {
    const r = await run(knock, ['example.invalid', '-i', identity, '--print-packet']);
    assert.equal(r.code, EXIT.key);
    for (const text of ['no server public key', 'admin', '--server-key FILE', '"serverKey" in a profile']) assert.ok(r.err.includes(text), `${text} not in ${r.err}`);
  });

  test('a mistyped profile name is told apart from a host without --server-key', async () => {
    const config = join(dir, 'typo.json');
    writeFileSync(config, JSON.stringify({ profiles: { bastion: { host: 'bastion.invalid', serverKey: serverPub }, lab: { host: 'lab.invalid' } } }));
    const typo = await run(knock, ['bastoin', '-i', identity, '--print-packet', '--config', config]);
    assert.equal(typo.code, EXIT.config, typo.err);
    assert.match(typo.err, /"bastoin" is not a profile in .*typo\.json \(profiles: bastion, lab\)/);
    assert.match(typo.err, /pass --server-key FILE/);
    assert.doesNotMatch(typo.err, /no server public key/);
    const keyless = await run(knock, ['lab', '-i', identity, '--print-packet', '--config', config]);
    assert.equal(keyless.code, EXIT.key, keyless.err);
    assert.match(keyless.err, /profile "lab" in .*typo\.json has no "serverKey"/);
    assert.equal((await run(knock, ['bastoin', '-i', identity, '--server-key', serverPub, '--print-packet', '--config', config])).code, EXIT.ok, 'with --server-key it is a host name');
  });

  test('-i with a public key file and no ssh-agent: says the key must be in the agent, with no chmod advice', async () => {
    const saved = process.env['SSH_AUTH_SOCK'];
    delete process.env['SSH_AUTH_SOCK'];
    try {
      const r = await run(knock, ['example.invalid', '-i', `${identity}.pub`, '--server-key', serverPub, '--print-packet']);
      assert.equal(r.code, EXIT.key);
      assert.match(r.err, /id_ed25519\.pub .*names a key in ssh-agent, but SSH_AUTH_SOCK is not set .*or pass -i .*id_ed25519\)/);
      assert.doesNotMatch(r.err, /chmod|too open/);
    } finally {
      if (saved !== undefined) process.env['SSH_AUTH_SOCK'] = saved;
    }
  });

  test('a server key file that is not one: EXIT.key naming the file', async () => {
    const r = await run(knock, ['example.invalid', '-i', identity, '--server-key', join(dir, 'id_ed25519.pub'), '--print-packet']);
    assert.equal(r.code, EXIT.key);
    assert.match(r.err, /id_ed25519\.pub.*not a server public key/);
  });

  test('a host that does not resolve: EXIT.host', async () => {
    const r = await run(knock, ['no-such-host.invalid', ...keyArgs()]);
    assert.equal(r.code, EXIT.host);
    assert.match(r.err, /cannot resolve host "no-such-host\.invalid"/);
  });

  test('a bad config file: EXIT.config', async () => {
    const config = join(dir, 'bad-config.json');
    writeFileSync(config, JSON.stringify({ profiles: { lab: { knockport: 1 } } }));
    const r = await run(knock, ['lab', '--config', config, ...keyArgs(), '--print-packet']);
    assert.equal(r.code, EXIT.config);
    assert.match(r.err, /profiles\.lab\.knockport: unknown key/);
  });

  const usageCases: [string, string[], RegExp][] = [
    ['1 no host', [], /expected one HOST/],
    ['2 two hosts', ['a.invalid', 'b.invalid'], /expected one HOST/],
    ['3 unknown flag', ['a.invalid', '--bogus'], /bogus/],
    ['4 port 0', ['a.invalid', '-p', 'tcp/0'], /--ports: "tcp\/0" is not a port/],
    ['5 17 ports', ['a.invalid', '-p', Array.from({ length: 17 }, (_, i) => `tcp/${i + 1}`).join(',')], /17 ports, at most 16/],
    ['6 duration 0', ['a.invalid', '-d', '0'], /--duration "0"/],
    ['7 duration text', ['a.invalid', '-d', '1m'], /--duration "1m"/],
    ['8 knock port', ['a.invalid', '--knock-port', '70000'], /--knock-port "70000"/],
    ['9 open address', ['a.invalid', '--open', 'my-nat'], /--open "my-nat"/],
    ['10 -4 and -6', ['a.invalid', '-4', '-6'], /-4 and -6/],
    ['11 --wait with --print-packet', ['a.invalid', '--wait', '--print-packet'], /exclude each other/],
    ['12 --wait with no tcp port', ['a.invalid', '--wait', '-p', 'udp/51820'], /no tcp port/],
    ['13 --timeout without --wait', ['a.invalid', '--timeout', '2'], /only applies with --wait/],
    ['14 timeout 0', ['a.invalid', '--wait', '--timeout', '0'], /--timeout "0"/],
    ['15 --confirm-ports without --wait', ['a.invalid', '--confirm-ports', '40000-40001'], /only applies with --wait/],
    ['16 --confirm-ports one port', ['a.invalid', '--wait', '--confirm-ports', '40000-40000'], /--confirm-ports: 40000-40000: the last port must be above the first/],
  ];
  for (const [name, argv, message] of usageCases) {
    test(`usage error ${name}: EXIT.usage`, async () => {
      const r = await run(knock, [...argv, ...keyArgs()]);
      assert.equal(r.code, EXIT.usage, r.err);
      assert.match(r.err, message);
    });
  }

  test('the exit codes differ', () => {
    const codes: number[] = [EXIT.usage, EXIT.config, EXIT.key, EXIT.host, EXIT.notOpened, EXIT.network, EXIT.notConfirmed];
    assert.equal(new Set(codes).size, codes.length);
    assert.ok(!codes.includes(EXIT.ok));
  });
});

describe('--help', () => {
  test('knock --help documents every option and the lookup order', async () => {
    const r = await run(knock, ['--help']);
    assert.equal(r.code, EXIT.ok);
    for (const flag of ['-p, --ports', '-d, --duration', '--open', '-i, --identity', '--server-key', '--knock-port', '-4, -6', '--wait', '--timeout', '--confirm-ports', '--print-packet', '--config', '-h, --help']) {
      assert.ok(r.out.includes(flag), `${flag} not in --help`);
    }
    assert.match(r.out, /the flags, then the profile named HOST in the config file,\s+then the defaults/);
    for (const key of ['host', 'family', 'knockPort', 'serverKey', 'identity', 'ports', 'durationSeconds', 'openAddress', 'timeoutSeconds', 'confirmPorts']) assert.ok(r.out.includes(`"${key}"`), key);
  });

  test('ssh-proxy --help shows the ProxyCommand line', async () => {
    const r = await run(sshProxy, ['--help']);
    assert.equal(r.code, EXIT.ok);
    assert.match(r.out, /ProxyCommand='sesame ssh-proxy %h %p'/);
  });
});

describe('ssh-proxy', () => {
  const cmdKnock = new URL('../../src/cli/knock.js', import.meta.url).href;

  /** Runs sshProxy in a child whose stdin/stdout are pipes, as ssh runs a ProxyCommand. */
  function proxyChild(argv: string[]): ChildProcessWithoutNullStreams {
    const script = `const m = await import(${JSON.stringify(cmdKnock)});
      try { process.exitCode = await m.sshProxy(${JSON.stringify(argv)}); }
      catch (e) { process.stderr.write('sesame: ' + e.message + '\\n'); process.exitCode = e.exitCode ?? 1; }`;
    return spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env } });
  }

  function collect(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; out: Buffer; err: string }> {
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += String(d)));
    return new Promise((resolve) => child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err })));
  }

  test('knocks for tcp/PORT, then relays bytes both ways, binary-safe; stdin EOF half-closes; exits 0 when the server closes', async () => {
    const kp = await knockPort();
    let serverSawEnd = false;
    const { server: echo, port } = await listen((s) => {
      s.on('end', () => (serverSawEnd = true));
      s.pipe(s);
    });
    try {
      const child = proxyChild(['127.0.0.1', String(port), ...keyArgs(), '--knock-port', String(kp.port)]);
      const done = collect(child);
      const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(200_000)]);
      child.stdin.write(data.subarray(0, 1000));
      child.stdin.end(data.subarray(1000));
      const r = await done;
      assert.match(r.err, /^sesame: tcp\/\d+ on 127\.0\.0\.1 \(127\.0\.0\.1\) is reachable, but the server did NOT confirm this knock/, 'relayed, and says plainly that this knock was not confirmed');
      assert.equal(r.code, EXIT.ok);
      assert.ok(serverSawEnd, 'stdin EOF reached the server as a FIN');
      assert.equal(r.out.length, data.length);
      assert.ok(r.out.equals(data), 'bytes came back unchanged');
      assert.equal(kp.packets.length, 1);
      assert.deepEqual(ports(verdict(kp.packets[0] ?? assert.fail())), [`tcp/${port}`]);
    } finally {
      echo.close();
      kp.socket.close();
    }
  });

  test('a port that does not open: non-zero exit, the reason on stderr, nothing on stdout', async () => {
    const port = await closedPort();
    const r = await collect(proxyChild(['127.0.0.1', String(port), ...keyArgs(), '--knock-port', '9', '--timeout', '1']));
    assert.equal(r.code, EXIT.notOpened);
    assert.equal(r.out.length, 0);
    assert.match(r.err, /nothing listening/);
  });

  test('bad arguments: EXIT.usage', async () => {
    assert.equal((await run(sshProxy, ['127.0.0.1'])).code, EXIT.usage);
    assert.equal((await run(sshProxy, ['127.0.0.1', '0'])).code, EXIT.usage);
    assert.equal((await run(sshProxy, ['127.0.0.1', '22', '--ports', 'tcp/1'])).code, EXIT.usage);
  });
});
