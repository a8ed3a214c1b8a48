// Invitation lines: round trips, a numbered table of refusals naming the field, any one-character change refused, the README's examples, and the QR code drawing the library's modules.
import assert from 'node:assert/strict';
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import qrcode from 'qrcode-generator';
import { checkOf, formatInvitation, INVITE, parseHost, parseInvitation, qrText } from '../../src/client/invite.ts';
import type { Invitation } from '../../src/client/invite.ts';
import { serverPublicKey } from '../../src/protocol/bytes.ts';
import type { ServerPublicKey } from '../../src/protocol/bytes.ts';
import { generateServerKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';

const key = (fill: number): ServerPublicKey => serverPublicKey(new Uint8Array(32).fill(fill));
const b64url = (k: Uint8Array): string => Buffer.from(k).toString('base64url');
/** A body with its check appended: lets a case get past CHECK to the field it is about. */
const sealed = (body: string): string => `${body},${checkOf(body)}`;
const KEY_A = b64url(key(1));

before(async () => {
  await loadSodium();
});

describe('round trip', () => {
  const cases: [string, Invitation][] = [
    ['1 a DNS name, one key, one port', { host: 'ssh.example.com', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }], serverKeys: [key(1)] }],
    ['2 IPv4, four keys (a rotation), udp and tcp', { host: '203.0.113.7', knockPort: 1, access: [{ proto: 'udp', port: 51820 }, { proto: 'tcp', port: 65535 }], serverKeys: [key(1), key(2), key(3), key(4)] }],
    ['3 IPv6, 16 ports', { host: '2001:db8::7', knockPort: 65535, access: Array.from({ length: 16 }, (_, i) => ({ proto: 'tcp' as const, port: 1000 + i })), serverKeys: [key(9)] }],
    ['4 a single-label name', { host: 'bastion', knockPort: 4000, access: [{ proto: 'tcp', port: 22 }], serverKeys: [key(5), key(6)] }],
  ];
  for (const [name, inv] of cases) {
    test(`case ${name}: the line parses back to the same fields, and has only shell-safe characters`, () => {
      const line = formatInvitation(inv);
      assert.match(line, /^sesame-invite:1:[a-z0-9.:,+/_-]+,[A-Za-z0-9_-]{8}$/i);
      const back = parseInvitation(`  ${line}\n`);
      assert.ok(back.ok, back.ok ? '' : back.reason);
      assert.deepEqual({ ...back.value, serverKeys: back.value.serverKeys.map(b64url) }, { ...inv, serverKeys: inv.serverKeys.map(b64url) });
    });
  }

  test('real keys survive, in order (the first is the one to knock with)', () => {
    const keys = [generateServerKeys().publicKey, generateServerKeys().publicKey];
    const back = parseInvitation(formatInvitation({ host: 'a.example', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }], serverKeys: keys }));
    assert.ok(back.ok);
    assert.deepEqual(back.value.serverKeys.map(b64url), keys.map(b64url));
  });

  test('formatInvitation refuses what the import would refuse', () => {
    assert.throws(() => formatInvitation({ host: 'ssh.example.com', knockPort: 62201, access: [], serverKeys: [key(1)] }), /ports\[0\]/);
    assert.throws(() => formatInvitation({ host: 'ssh.example.com', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }], serverKeys: [] }), /server keys\[0\]/);
    assert.throws(() => formatInvitation({ host: 'Bad_Host', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }], serverKeys: [key(1)] }), /host/);
  });
});

describe('refusals name the field', () => {
  const good = `sesame-invite:1:ssh.example.com,62201,tcp/22,${KEY_A}`;
  // Each case: the pasted text, then text the reason must contain.
  const cases: [string, string, RegExp][] = [
    ['1 not an invitation', 'ssh.example.com', /not a sesame invitation/],
    ['2 another version', sealed(good.replace(':1:', ':2:')), /version: this is a version 2 invitation and this sesame reads version 1 only/],
    ['3 no version', 'sesame-invite:ssh.example.com,62201', /version: expected sesame-invite:1:/],
    ['4 tampered: one character of the key changed', sealed(good).replace(KEY_A, `B${KEY_A.slice(1)}`), /check: the line is damaged or incomplete/],
    ['5 cut short', sealed(good).slice(0, -3), /check: the line is damaged/],
    ['6 no check', good, /check: the line is damaged/],
    ['7 too long', `sesame-invite:1:${'a'.repeat(1100)}`, /at most 1024/],
    ['8 a field missing', sealed(`sesame-invite:1:ssh.example.com,62201,${KEY_A}`), /expected 4 fields/],
    ['9 an extra field', sealed(`${good},x`), /expected 4 fields/],
    ['10 host with an underscore', sealed(good.replace('ssh.example.com', 'ssh_x.example.com')), /host: "ssh_x.example.com" is not a host name/],
    ['11 host in upper case', sealed(good.replace('ssh.example.com', 'SSH.example.com')), /host: "SSH.example.com" is not written as sesame writes it \(ssh.example.com\)/],
    ['12 host with a trailing dot', sealed(good.replace('ssh.example.com', 'ssh.example.com.')), /host: .* is not a host name/],
    ['13 host that looks like a short IPv4', sealed(good.replace('ssh.example.com', '10.1')), /host: "10.1" is neither an IPv4 address nor a host name/],
    ['14 IPv6 with a zone', sealed(good.replace('ssh.example.com', 'fe80::1%eth0')), /host: "fe80::1%eth0" is not a usable IP address/],
    ['15 IPv6 not as RFC 5952 writes it', sealed(good.replace('ssh.example.com', '2001:DB8:0:0::1')), /host: .* is not written as sesame writes it \(2001:db8::1\)/],
    ['16 knock port 0', sealed(good.replace('62201', '0')), /knock port: "0" is not a port number/],
    ['17 knock port too big', sealed(good.replace('62201', '70000')), /knock port: "70000" is not a port number/],
    ['18 knock port with a leading zero', sealed(good.replace('62201', '062201')), /knock port: "062201"/],
    ['19 port out of range', sealed(good.replace('tcp/22', 'tcp/70000')), /ports\[0\]: "tcp\/70000" is not tcp\/PORT or udp\/PORT/],
    ['20 port without protocol', sealed(good.replace('tcp/22', '22')), /ports\[0\]: "22"/],
    ['21 port with a leading zero', sealed(good.replace('tcp/22', 'tcp/022')), /ports\[0\]: "tcp\/022"/],
    ['22 sctp', sealed(good.replace('tcp/22', 'tcp/22+sctp/9')), /ports\[1\]: "sctp\/9"/],
    ['23 a port twice', sealed(good.replace('tcp/22', 'tcp/22+tcp/22')), /ports\[1\]: tcp\/22 is listed twice/],
    ['24 17 ports', sealed(good.replace('tcp/22', Array.from({ length: 17 }, (_, i) => `tcp/${i + 1}`).join('+'))), /ports: 17 entries, at most 16/],
    ['25 a key one byte short', sealed(good.replace(KEY_A, b64url(new Uint8Array(31)))), /server keys\[0\]: .* is not 43 characters of base64url/],
    ['26 a key in standard base64', sealed(good.replace(KEY_A, Buffer.from(key(0xff)).toString('base64'))), /server keys\[0\]: "\/{42}8=" is not 43 characters of base64url/],
    ['27 a key whose last character is not canonical', sealed(good.replace(KEY_A, `${KEY_A.slice(0, 42)}F`)), /server keys\[0\]: .* is not 43 characters of base64url/],
    ['28 the same key twice', sealed(`${good}+${KEY_A}`), /server keys\[1\]: the same key is listed twice/],
    ['29 five keys', sealed(`${good}${[2, 3, 4, 5].map((i) => `+${b64url(key(i))}`).join('')}`), /server keys: 5 keys, at most 4/],
    ['30 a space inside', sealed(good.replace('tcp/22', 'tcp/22 ')), /ports\[0\]/],
    ['31 an empty field', sealed(good.replace('tcp/22', '')), /ports\[0\]: ""/],
  ];
  for (const [name, line, expected] of cases) {
    test(`case ${name}`, () => {
      const r = parseInvitation(line);
      assert.equal(r.ok, false, `accepted: ${line}`);
      assert.match(r.ok ? '' : r.reason, expected);
    });
  }

  test('property: changing any one character of a valid line gets it refused', () => {
    const line = formatInvitation({ host: 'ssh.example.com', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }], serverKeys: [key(1), key(2)] });
    const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:+/ ';
    fc.assert(
      fc.property(fc.nat({ max: line.length - 1 }), fc.constantFrom(...chars), (at, c) => {
        fc.pre(line[at] !== c);
        return !parseInvitation(`${line.slice(0, at)}${c}${line.slice(at + 1)}`).ok;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseHost (also --host on the admin side)', () => {
  test('any spelling of an address or name comes out canonical', () => {
    assert.deepEqual(parseHost('SSH.Example.COM'), { ok: true, value: 'ssh.example.com' });
    assert.deepEqual(parseHost('2001:DB8:0:0::1'), { ok: true, value: '2001:db8::1' });
    assert.deepEqual(parseHost('::ffff:192.0.2.1'), { ok: true, value: '192.0.2.1' });
    assert.deepEqual(parseHost(`${'a'.repeat(63)}.example`), { ok: true, value: `${'a'.repeat(63)}.example` });
  });

  test('refused: empty, too long, bad labels, a URL, a port, brackets', () => {
    for (const bad of ['', `${'a'.repeat(64)}.example`, `${'a.'.repeat(127)}ab`, '-x.example', 'x-.example', 'a..b', 'https://x', 'x.example:22', '[::1]', 'x y']) {
      assert.equal(parseHost(bad).ok, false, bad);
    }
  });
});

describe('the README', () => {
  test('its example invitations import (a promise in the README is a test)', () => {
    // Beside package.json, also when the build directory links to it.
    const readme = readFileSync(join(dirname(realpathSync(new URL('../../../package.json', import.meta.url))), 'README.md'), 'utf8');
    const lines = readme.match(/sesame-invite:1:[^\s`|]+,[A-Za-z0-9_-]{8}\b/g) ?? [];
    assert.ok(lines.length >= 2, 'the README shows example lines');
    for (const line of lines) assert.ok(parseInvitation(line).ok, line);
  });

  test('INVITE bounds match the format the README states', () => {
    assert.deepEqual([INVITE.prefix, INVITE.version, INVITE.maxLineChars, INVITE.maxServerKeys, INVITE.maxAccessEntries, INVITE.checkBytes], ['sesame-invite:', 1, 1024, 4, 16, 6]);
  });
});

describe('QR code', () => {
  test('draws exactly the modules of the library\'s code, light modules as blocks, with a quiet zone', async () => {
    const line = formatInvitation({ host: 'ssh.example.com', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }], serverKeys: [key(1)] });
    const text = await qrText(line, false);
    const qr = qrcode(0, 'M');
    qr.addData(line, 'Byte');
    qr.make();
    const size = qr.getModuleCount();
    const rows = text.trimEnd().split('\n');
    assert.equal(rows[0]?.length, size + 4);
    assert.equal(rows.length, Math.ceil((size + 4) / 2));
    for (let r = 0; r < size + 4; r++) {
      for (let c = 0; c < size + 4; c++) {
        const cell = rows[Math.floor(r / 2)]?.[c] ?? '?';
        const lightDrawn = r % 2 === 0 ? cell === '█' || cell === '▀' : cell === '█' || cell === '▄';
        const inside = r >= 2 && c >= 2 && r < size + 2 && c < size + 2;
        assert.equal(lightDrawn, !inside || !qr.isDark(r - 2, c - 2), `module ${r - 2},${c - 2}`);
      }
    }
    assert.doesNotMatch(text, /\u001b/, 'no escape sequences: the code survives a pipe or a file');
  });

  test('for a terminal, each row also sets white on black, and only that', async () => {
    const line = formatInvitation({ host: 'ssh.example.com', knockPort: 62201, access: [{ proto: 'tcp', port: 22 }], serverKeys: [key(1)] });
    const plain = (await qrText(line, false)).trimEnd().split('\n');
    const coloured = (await qrText(line, true)).trimEnd().split('\n');
    assert.deepEqual(coloured, plain.map((row) => `\u001b[97;40m${row}\u001b[0m`));
  });
});
