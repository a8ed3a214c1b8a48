// Client profiles: the shipped schema, errors that name file + JSON path + what was expected, path resolution, and the order flags > profile > defaults.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { parseAddress } from '../../src/protocol/address.ts';
import { EXIT, OperatorError } from '../../src/errors.ts';
import { DEFAULTS } from '../../src/limits.ts';
import { jsonPath } from '../../src/files.ts';
import { DEFAULT_ACCESS, DEFAULT_IDENTITY, DEFAULT_TIMEOUT_SECONDS, expandPath, loadClientConfig as loadConfig, PROFILE_KEYS, PROFILE_NAME, settingsFor } from '../../src/client/profile.ts';
import type { ClientConfig, KnockOptions } from '../../src/client/profile.ts';

const dir = mkdtempSync(join(tmpdir(), 'sesame-profile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function writeConfig(content: unknown): string {
  const file = join(dir, `config-${++fileNo}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Loads content and returns the OperatorError it raises. */
async function configFailure(content: unknown): Promise<{ file: string; err: OperatorError }> {
  const file = writeConfig(content);
  try {
    await loadConfig(file, true);
  } catch (err) {
    assert.ok(err instanceof OperatorError, String(err));
    return { file, err };
  }
  return assert.fail(`${JSON.stringify(content)} was accepted`);
}

const child = (v: unknown, key: string): unknown => (typeof v === 'object' && v !== null ? Object.entries(v).find(([k]) => k === key)?.[1] : undefined);

describe('the shipped schema', () => {
  const schema: unknown = JSON.parse(readFileSync(new URL('../../../src/schema/client.schema.json', import.meta.url), 'utf8'));

  test('is a valid draft-07 schema under ajv strict mode (start-up skips this check, so it is made here)', () => {
    assert.ok(typeof schema === 'object' && schema !== null);
    assert.doesNotThrow(() => new Ajv({ strict: true, allErrors: true }).compile(schema));
  });

  test('its profile keys are exactly the ones profile.ts converts', () => {
    const properties = child(child(child(schema, 'definitions'), 'profile'), 'properties');
    assert.ok(typeof properties === 'object' && properties !== null);
    assert.deepEqual(Object.keys(properties), [...PROFILE_KEYS]);
  });

  test('its profile-name pattern is the one profile import checks names with', () => {
    const names = child(child(schema, 'properties'), 'profiles');
    assert.equal(child(child(names, 'propertyNames'), 'pattern'), PROFILE_NAME.source);
  });
});

describe('loading', () => {
  test('a missing default config means no profiles; a missing --config file is an error naming it', async () => {
    assert.equal(await loadConfig(join(dir, 'absent.json'), false), undefined);
    await assert.rejects(loadConfig(join(dir, 'absent.json'), true), (err: unknown) => err instanceof OperatorError && err.exitCode === EXIT.config && err.message.includes('absent.json'));
  });

  test('a valid file gives typed profiles', async () => {
    const file = writeConfig({
      $schema: './client.schema.json',
      profiles: {
        prod: { host: 'prod.example.com', family: 6, knockPort: 4000, serverKey: 'keys/prod.pub', identity: '~/id', ports: ['tcp/22', 'udp/51820', '443'], durationSeconds: 60, openAddress: '2001:db8::7', timeoutSeconds: 2.5 },
        'lab.example.org': {},
      },
    });
    const config = await loadConfig(file, true);
    assert.ok(config);
    assert.deepEqual([...config.profiles.keys()], ['prod', 'lab.example.org']);
    const prod = config.profiles.get('prod');
    assert.ok(prod);
    assert.equal(prod.host, 'prod.example.com');
    assert.equal(prod.family, 6);
    assert.equal(prod.knockPort, 4000);
    assert.deepEqual(prod.serverKey, { kind: 'file', path: join(dir, 'keys/prod.pub') });
    assert.equal(prod.identity, join(homedir(), 'id'));
    assert.deepEqual(prod.access, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 51820 }, { proto: 'tcp', port: 443 }]);
    assert.equal(prod.durationSeconds, 60);
    assert.equal(prod.openAddress?.text, '2001:db8::7');
    assert.equal(prod.timeoutSeconds, 2.5);
    assert.deepEqual(config.profiles.get('lab.example.org'), {});
  });

  test('serverKey holding the key line itself is kept inline, with where it came from', async () => {
    const line = 'sesame-x25519 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= srv';
    const file = writeConfig({ profiles: { prod: { serverKey: line } } });
    const config = await loadConfig(file, true);
    assert.deepEqual(config?.profiles.get('prod')?.serverKey, { kind: 'inline', line, where: `${file}: profiles.prod.serverKey` });
  });

  test('serverKeys (a key rotation): the first one is the key to knock with, a line or a file, with where it came from', async () => {
    const line = 'sesame-x25519 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= new';
    const file = writeConfig({ profiles: { inline: { serverKeys: [line, 'old.pub'] }, files: { serverKeys: ['keys/new.pub', line] } } });
    const config = await loadConfig(file, true);
    assert.deepEqual(config?.profiles.get('inline')?.serverKey, { kind: 'inline', line, where: `${file}: profiles.inline.serverKeys[0]` });
    assert.deepEqual(config?.profiles.get('files')?.serverKey, { kind: 'file', path: join(dir, 'keys/new.pub') });
    // The rest, in order, are what --wait falls back to while a knock is not confirmed.
    assert.deepEqual(config?.profiles.get('inline')?.moreServerKeys, [{ kind: 'file', path: join(dir, 'old.pub') }]);
    assert.deepEqual(config?.profiles.get('files')?.moreServerKeys, [{ kind: 'inline', line, where: `${file}: profiles.files.serverKeys[1]` }]);
  });

  test('confirmPorts: a FIRST-LAST range, typed', async () => {
    const config = await loadConfig(writeConfig({ profiles: { prod: { confirmPorts: '40000-40015' } } }), true);
    assert.deepEqual(config?.profiles.get('prod')?.confirmPorts, { first: 40000, last: 40015 });
  });

  test('not JSON: the error names the file', async () => {
    const { file, err } = await configFailure('{ "profiles": ');
    assert.equal(err.exitCode, EXIT.config);
    assert.match(err.message, new RegExp(`^${file} is not valid JSON`));
  });

  // Each case: file content, then text the error must contain (the JSON path and what was expected).
  const cases: [string, unknown, string[]][] = [
    ['1 wrong type', { profiles: { prod: { knockPort: '62201' } } }, ['profiles.prod.knockPort: must be integer', 'UDP port the server listens on']],
    ['2 out of range', { profiles: { prod: { knockPort: 70000 } } }, ['profiles.prod.knockPort: must be <= 65535']],
    ['3 unknown profile key', { profiles: { prod: { hots: 'x' } } }, ['profiles.prod.hots: unknown key (allowed here: host, family, knockPort, serverKey']],
    ['4 unknown top-level key', { profile: {} }, ['profile: unknown key (allowed here: $schema, profiles)']],
    ['5 port text', { profiles: { prod: { ports: ['tcp/22', 'ssh'] } } }, ['profiles.prod.ports[1]: must match pattern', 'tcp/PORT or udp/PORT']],
    ['6 port number', { profiles: { prod: { ports: ['tcp/70000'] } } }, ['profiles.prod.ports[0]: port "tcp/70000" is out of range']],
    ['7 too many ports', { profiles: { prod: { ports: Array.from({ length: 17 }, (_, i) => `tcp/${i + 1}`) } } }, ['profiles.prod.ports: must NOT have more than 16 items']],
    ['8 no ports', { profiles: { prod: { ports: [] } } }, ['profiles.prod.ports: must NOT have fewer than 1 items']],
    ['9 family', { profiles: { prod: { family: 5 } } }, ['profiles.prod.family: must be one of 4, 6']],
    ['10 open address', { profiles: { prod: { openAddress: 'my-nat' } } }, ['profiles.prod.openAddress: "my-nat" is not an IPv4 or IPv6 address']],
    ['11 duration', { profiles: { prod: { durationSeconds: 0 } } }, ['profiles.prod.durationSeconds: must be >= 1']],
    ['12 timeout', { profiles: { prod: { timeoutSeconds: 0 } } }, ['profiles.prod.timeoutSeconds: must be > 0']],
    ['13 profile name', { profiles: { '-x': {} } }, ['profiles: "-x" is not a valid name (expected a profile name']],
    ['14 profile not an object', { profiles: { prod: 'prod.example.com' } }, ['profiles.prod: must be object']],
    ['15 top level not an object', [], ['(top level): must be object']],
    ['16 dotted profile name in the path', { profiles: { 'a.example.com': { host: 7 } } }, ['profiles["a.example.com"].host: must be string']],
    ['17 empty serverKey', { profiles: { prod: { serverKey: '' } } }, ['profiles.prod.serverKey: must NOT have fewer than 1 characters']],
    ['18 serverKeys empty', { profiles: { prod: { serverKeys: [] } } }, ['profiles.prod.serverKeys: must NOT have fewer than 1 items']],
    ['19 serverKeys five', { profiles: { prod: { serverKeys: ['a', 'b', 'c', 'd', 'e'] } } }, ['profiles.prod.serverKeys: must NOT have more than 4 items']],
    ['20 serverKeys repeated', { profiles: { prod: { serverKeys: ['a.pub', 'a.pub'] } } }, ['profiles.prod.serverKeys: must NOT have duplicate items']],
    ['21 serverKeys not strings', { profiles: { prod: { serverKeys: [7] } } }, ['profiles.prod.serverKeys[0]: must be string']],
    ['23 confirmPorts not a range', { profiles: { prod: { confirmPorts: '62202' } } }, ['profiles.prod.confirmPorts: must match pattern']],
    ['24 confirmPorts one port', { profiles: { prod: { confirmPorts: '62202-62202' } } }, ['profiles.prod.confirmPorts: 62202-62202: the last port must be above the first']],
    ['25 confirmPorts too wide', { profiles: { prod: { confirmPorts: '1000-9000' } } }, ['profiles.prod.confirmPorts: 1000-9000: at most 1024 ports']],
    ['22 serverKey and serverKeys', { profiles: { prod: { serverKey: 'a.pub', serverKeys: ['b.pub'] } } }, ['profiles.prod.serverKeys: give "serverKey" or "serverKeys", not both']],
  ];
  for (const [name, content, expected] of cases) {
    test(`schema error ${name}: names the file, the path and what was expected`, async () => {
      const { file, err } = await configFailure(content);
      assert.equal(err.exitCode, EXIT.config);
      assert.ok(err.message.includes(file), err.message);
      for (const text of expected) assert.ok(err.message.includes(text), `${JSON.stringify(text)} not in:\n${err.message}`);
    });
  }

  test('several errors are all reported', async () => {
    const { err } = await configFailure({ profiles: { a: { knockPort: 0 }, b: { wat: 1 } } });
    assert.match(err.message, /profiles\.a\.knockPort/);
    assert.match(err.message, /profiles\.b\.wat/);
  });
});

describe('paths', () => {
  test('~/ is the home directory, relative paths resolve against the base, absolute paths stay', () => {
    assert.equal(expandPath('~/k', '/etc'), join(homedir(), 'k'));
    assert.equal(expandPath('~', '/etc'), homedir());
    assert.equal(expandPath('k/id', '/cfg/sesame'), '/cfg/sesame/k/id');
    assert.equal(expandPath('../id', '/cfg/sesame'), '/cfg/id');
    assert.equal(expandPath('/abs/id', '/cfg/sesame'), '/abs/id');
    assert.equal(expandPath('~user/x', '/cfg'), '/cfg/~user/x');
  });

  test('JSON pointers read as paths', () => {
    assert.equal(jsonPath(''), '(top level)');
    assert.equal(jsonPath('/profiles/prod/ports/3'), 'profiles.prod.ports[3]');
    assert.equal(jsonPath('/profiles/a~1b~0c'), 'profiles["a/b~c"]');
  });
});

describe('lookup order: flags, then profile, then defaults', () => {
  const open1 = parseAddress('192.0.2.1');
  const open2 = parseAddress('192.0.2.2');
  assert.ok(open1 && open2);
  const profile: KnockOptions = {
    host: 'real.example.com',
    family: 6,
    knockPort: 1000,
    serverKey: { kind: 'file', path: '/p/server.pub' },
    identity: '/p/id',
    access: [{ proto: 'udp', port: 51820 }],
    durationSeconds: 60,
    openAddress: open1,
    timeoutSeconds: 9,
    confirmPorts: { first: 40000, last: 40007 },
    moreServerKeys: [{ kind: 'file', path: '/p/server-old.pub' }],
  };
  const config: ClientConfig = { file: '/p/config.json', profiles: new Map([['prod', profile]]) };

  test('a profile fills in what the flags leave out', () => {
    assert.deepEqual(settingsFor('prod', {}, config), { profile: 'prod', ...profile, access: profile.access });
  });

  test('every flag wins over the profile', () => {
    const flags: KnockOptions = {
      family: 4,
      knockPort: 2000,
      serverKey: { kind: 'file', path: '/f/server.pub' },
      identity: '/f/id',
      access: [{ proto: 'tcp', port: 2222 }],
      durationSeconds: 5,
      openAddress: open2,
      timeoutSeconds: 1,
      confirmPorts: { first: 50000, last: 50001 },
    };
    // --server-key names one key: the profile's rotation keys are not tried with it.
    assert.deepEqual(settingsFor('prod', flags, config), { profile: 'prod', host: 'real.example.com', ...flags, moreServerKeys: [] });
  });

  test('without a profile: the defaults, and HOST is the host name', () => {
    const expected = {
      profile: undefined,
      host: 'elsewhere.example.com',
      family: undefined,
      knockPort: DEFAULTS.knockPort,
      serverKey: undefined,
      identity: DEFAULT_IDENTITY(),
      access: DEFAULT_ACCESS,
      durationSeconds: undefined,
      openAddress: undefined,
      timeoutSeconds: DEFAULT_TIMEOUT_SECONDS,
      confirmPorts: { first: 62202, last: 62217 },
      moreServerKeys: [],
    };
    assert.deepEqual(settingsFor('elsewhere.example.com', {}, config), expected);
    assert.deepEqual(settingsFor('elsewhere.example.com', {}, undefined), expected);
  });

  test('a HOST that names no profile finds the one profile whose "host" it is (ssh\'s %h), in any case', () => {
    const s = settingsFor('REAL.example.com', {}, config);
    assert.equal(s.profile, 'prod');
    assert.equal(s.host, 'real.example.com');
    assert.equal(s.knockPort, 1000);
    assert.deepEqual(s.serverKey, profile.serverKey);
  });

  test('a profile named HOST wins over one whose "host" is HOST; two with the same "host" match neither', () => {
    const both: ClientConfig = {
      file: '/p/config.json',
      profiles: new Map<string, KnockOptions>([['a', { host: 'x.example.com', knockPort: 1 }], ['x.example.com', { knockPort: 2 }], ['b', { host: 'y.example.com', knockPort: 3 }], ['c', { host: 'y.example.com', knockPort: 4 }]]),
    };
    assert.equal(settingsFor('x.example.com', {}, both).knockPort, 2);
    const ambiguous = settingsFor('y.example.com', {}, both);
    assert.equal(ambiguous.profile, undefined);
    assert.equal(ambiguous.knockPort, DEFAULTS.knockPort);
    assert.equal(ambiguous.serverKey, undefined);
  });

  test('a profile without "host" knocks at the profile name', () => {
    const named: ClientConfig = { file: '/p/config.json', profiles: new Map([['bastion.example.com', { knockPort: 3000 }]]) };
    const s = settingsFor('bastion.example.com', {}, named);
    assert.equal(s.profile, 'bastion.example.com');
    assert.equal(s.host, 'bastion.example.com');
    assert.equal(s.knockPort, 3000);
  });
});
