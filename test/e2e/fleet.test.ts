// End to end: a fleet of three real daemons in three server namespaces sharing one signed users document in a real 3-member etcd cluster (its own namespace, one veth to each server): adds and revocations reach all three, refused documents stay refused, edits race without loss, and an etcd outage changes nothing until it ends.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { toHex } from '../../src/protocol/bytes.ts';
import { formatKeyLine, KEY_TYPE, readUserSecretKey } from '../../src/protocol/keyfile.ts';
import { deriveKeyId, generateUserKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { readTable } from '../../src/server/nft-read.ts';
import { loadAdminKeys } from '../../src/server/admin-keys.ts';
import { nextSequence, openSigned, signDocument } from '../../src/server/users-signed.ts';
import { validateUsersFile } from '../../src/server/users.ts';
import type { UsersFile } from '../../src/server/users.ts';
import { etcdMissing, startEtcdCluster } from '../../src/harness/etcd.ts';
import type { EtcdCluster } from '../../src/harness/etcd.ts';
import { execIn, run } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const skip = skipReason() ?? etcdMissing();
const PORT = 2222;
const KNOCK_PORT = 62201;
const PREFIX = '/sesame-test/';
const KEY = `${PREFIX}users`;
/** The bound, from the moment `sesame user revoke` has committed (its exit) to the grant's close on every server. */
const WITHIN_MS = 1000;
const TRIALS = 10;

interface Server {
  readonly i: number;
  readonly topo: Topology;
  readonly dir: ServerDir;
  daemon: Daemon;
}

const keyIdOf = (u: UserKeys): string => toHex(deriveKeyId(u.publicKey));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
/** pino's ISO time of a log line, in ms. */
const timeOf = (e: { readonly [k: string]: unknown }): number => (typeof e['time'] === 'string' ? Date.parse(e['time']) : NaN);

describe('a fleet on etcd: three servers, one signed users document', { skip }, () => {
  let etcd: EtcdCluster;
  let adminDir: string;
  let adminKey: string;
  const servers: Server[] = [];
  const listeners: { stop: () => Promise<void> }[] = [];
  const users = new Map<string, UserKeys>();
  /** The signed document as it was after the first add: validly signed, and older than every later one. */
  let early = '';

  const start = async (s: Server): Promise<Daemon> => {
    const d = new Daemon(s.topo.server.ns, s.dir.configPath);
    await d.event('server.started', 10_000);
    return d;
  };
  const at = (i: number): Server => servers[i - 1] ?? assert.fail(`no server ${i}`);
  /** The real CLI run on server i (inside its namespace, as an admin logged in there would). */
  const cli = async (i: number, ...args: string[]): Promise<string> => {
    const r = await execIn(at(i).topo.server.ns, [process.execPath, CLI, ...args, '-c', at(i).dir.configPath, '--admin-key', adminKey]);
    assert.equal(r.code, 0, `sesame ${args.join(' ')} on server ${i}: ${r.stderr}`);
    return r.stdout;
  };
  const knock = (s: Server, u: UserKeys): Promise<void> =>
    sendUdp(s.topo.client.ns, s.topo.server.v4, KNOCK_PORT, buildKnock({ access: [{ proto: 'tcp', port: PORT }], durationSeconds: 300 }, u, s.dir.serverKeys.publicKey, Date.now(), systemRandom));
  /** Knocks as name on every server and waits for each grant. */
  const grantEverywhere = async (name: string, list: readonly Server[] = servers): Promise<void> => {
    const u = users.get(name) ?? assert.fail(`no keys for ${name}`);
    await Promise.all(list.map(async (s) => {
      const since = s.daemon.events.length;
      await knock(s, u);
      await s.daemon.waitFor((e) => e.event === 'grant.opened' && e['user'] === name, 5000, since, `grant.opened for ${name} on server ${s.i}`);
    }));
  };
  /** Adds name (fresh keys) on server i, and waits until every daemon has the key. */
  const add = async (i: number, name: string): Promise<void> => {
    const u = at(i).dir.userKey(name);
    users.set(name, u);
    const since = servers.map((s) => s.daemon.events.length);
    await cli(i, 'user', 'add', name, '--key', join(at(i).dir.dir, `${name}.pub`), '--ports', `tcp/${PORT}`);
    await Promise.all(servers.map((s, j) => s.daemon.waitFor((e) => e.event === 'key.added' && e['keyId'] === keyIdOf(u), 5000, since[j], `key.added for ${name} on server ${s.i}`)));
  };
  const grantsOf = async (s: Server, name: string): Promise<number> => {
    const r = await execIn(s.topo.server.ns, ['nft', '-j', 'list', 'table', 'inet', 'sesame']);
    assert.equal(r.code, 0, r.stderr);
    const id = keyIdOf(users.get(name) ?? assert.fail(name));
    return readTable(r.stdout).grants.filter((g) => g.owner.keyIdHex === id).length;
  };
  const stored = async (): Promise<string> => {
    const r = await etcd.etcdctl(['get', KEY, '--print-value-only']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.replace(/\n$/, '');
  };
  const put = async (value: string): Promise<void> => {
    const r = await etcd.etcdctl(['put', KEY], value);
    assert.equal(r.code, 0, r.stderr);
  };
  /** Edits the document in etcd directly, signed with the admin key (test set-up, not the CLI under test). */
  const writeDirect = async (edit: (doc: UsersFile) => void): Promise<void> => {
    const opened = openSigned(await stored(), loadAdminKeys([`${adminKey}.pub`], 'test'), PREFIX);
    assert.ok(opened.ok);
    const doc = validateUsersFile(opened.json, 'etcd');
    edit(doc);
    await put(signDocument(doc, nextSequence(opened.signed.sequence, Date.now()), PREFIX, readUserSecretKey(adminKey)));
  };
  const everyone = (what: string, match: (e: { readonly [k: string]: unknown }) => boolean, since: readonly number[], timeoutMs = 5000): Promise<unknown> =>
    Promise.all(servers.map((s, j) => s.daemon.waitFor(match, timeoutMs, since[j], `${what} on server ${s.i}`)));
  const marks = (): number[] => servers.map((s) => s.daemon.events.length);

  before(async () => {
    await loadSodium();
    adminDir = mkdtempSync(join(tmpdir(), 'sesame-admin-'));
    adminKey = join(adminDir, 'admin');
    const kg = await run(process.execPath, [CLI, 'keygen', '-f', adminKey, '-C', 'fleet admin']);
    assert.equal(kg.code, 0, kg.stderr);
    etcd = await startEtcdCluster('fleet');
    for (const i of [1, 2, 3]) {
      const topo = await createTopology(`fleet${i}`);
      await etcd.attach(topo.server.ns, i);
      const dir = makeServerDir({ usersFile: undefined, users: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX } }, adminKeys: ['admin.pub'], knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], maxDurationSeconds: 300 });
      copyFileSync(`${adminKey}.pub`, join(dir.dir, 'admin.pub'));
      listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
      const s: Server = { i, topo, dir, daemon: new Daemon(topo.server.ns, dir.configPath) };
      servers.push(s);
    }
    await Promise.all(servers.map(async (s) => {
      await s.daemon.event('server.started', 10_000);
      await s.daemon.event('users.source_connected', 10_000);
    }));
  });

  after(async () => {
    for (const s of servers) await s.daemon.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    for (const s of servers) {
      await s.topo.destroy();
      s.dir.remove();
    }
    await etcd?.destroy();
    if (adminDir !== undefined) rmSync(adminDir, { recursive: true, force: true });
  });

  test('a user added on one machine can knock on all three', async () => {
    await add(1, 'alice');
    await grantEverywhere('alice');
    for (const s of servers) assert.equal(await grantsOf(s, 'alice'), 1, `alice's grant on server ${s.i}`);
    early = await stored();
  });

  test('concurrent edits lose nothing: two CLIs on two machines, and six editors racing in one process', async () => {
    // Six editors in one process read the same revision at once: all but one lose the compare-and-swap and must edit again.
    const racers = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6'];
    const lines = racers.map((n) => {
      const u = generateUserKeys();
      users.set(n, u);
      return formatKeyLine(KEY_TYPE.userPublic, u.publicKey, n).trim();
    });
    const script = `const [cfg, admin, lines] = process.argv.slice(1);
const { loadSodium } = await import(${JSON.stringify(new URL('../../src/protocol/sodium.js', import.meta.url).href)});
const { loadConfig } = await import(${JSON.stringify(new URL('../../src/server/config.js', import.meta.url).href)});
const { editEtcdUsers } = await import(${JSON.stringify(new URL('../../src/cli/user-etcd.js', import.meta.url).href)});
await loadSodium(); const config = loadConfig(cfg); let edits = 0;
await Promise.all(JSON.parse(lines).map((line, i) => editEtcdUsers(config, admin, (doc) => { edits++; doc.users['e' + (i + 1)] = { keys: [{ key: line }], ports: ['tcp/${PORT}'] }; return ''; })));
console.log(edits);`;
    const since = marks();
    const [racing] = await Promise.all([
      execIn(at(2).topo.server.ns, [process.execPath, '--input-type=module', '-e', script, at(2).dir.configPath, adminKey, JSON.stringify(lines)]),
      add(1, 'c1'),
      add(2, 'c2'),
    ]);
    assert.equal(racing.code, 0, racing.stderr);
    assert.ok(Number(racing.stdout) > racers.length, `the racing editors lost no compare-and-swap (${racing.stdout.trim()} edits for ${racers.length} users): the race was not tested`);
    const listed = JSON.stringify(JSON.parse(await cli(3, 'user', 'list', '--json')));
    for (const n of [...racers, 'c1', 'c2', 'alice']) assert.match(listed, new RegExp(`"${n}"`), `${n} is in the document`);
    await everyone('the last racer', (e) => e.event === 'key.added' && e['user'] === 'e6', since);
  });

  test(`revoke on the CLI -> the grant is gone on each of the three servers within ${WITHIN_MS} ms (median of ${TRIALS})`, async () => {
    const fromExit: number[] = [];
    const fromStart: number[] = [];
    // The trial users are written straight to etcd in one signed document (the CLI's adds are tested above); only the revocations under measurement go through the CLI.
    const names = Array.from({ length: TRIALS }, (_, k) => `r${k}`);
    const since0 = marks();
    await writeDirect((doc) => {
      for (const name of names) {
        const u = generateUserKeys();
        users.set(name, u);
        doc.users[name] = { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, u.publicKey, name).trim() }], ports: [`tcp/${PORT}`] };
      }
    });
    await everyone('users.reloaded with the trial users', (e) => e.event === 'key.added' && e['user'] === names.at(-1), since0);
    for (const [k, name] of names.entries()) {
      await grantEverywhere(name);
      const since = marks();
      const t0 = Date.now();
      await cli(((k + 1) % 3) + 1, 'user', 'revoke', name);
      const tExit = Date.now();
      const id = keyIdOf(users.get(name) ?? assert.fail(name));
      await Promise.all(servers.map(async (s, j) => {
        const e = await s.daemon.waitFor((x) => x.event === 'grant.closed' && x['keyId'] === id, 5000, since[j], `grant.closed for ${name} on server ${s.i}`);
        fromExit.push(timeOf(e) - tExit);
        fromStart.push(timeOf(e) - t0);
        assert.ok(timeOf(e) - tExit <= WITHIN_MS, `server ${s.i} closed ${name}'s grant ${timeOf(e) - tExit} ms after the CLI committed`);
        assert.equal(await grantsOf(s, name), 0, `no element of ${name} left on server ${s.i}`);
      }));
    }
    process.stdout.write(`# fleet revoke -> grant closed, ${fromExit.length} closes (${TRIALS} revocations x 3 servers): median ${median(fromExit)} ms after the CLI exited (max ${Math.max(...fromExit)}), median ${median(fromStart)} ms after it started\n`);
  });

  test('a document without a trusted admin signature, an older one, or one that drops revocations is refused by all three', async () => {
    const good = await stored();
    const mallory = generateUserKeys();
    const doc = { users: { mallory: { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, mallory.publicKey, 'mallory').trim() }], ports: [`tcp/${PORT}`] } } };
    const rogue = generateUserKeys();
    // The admin's own signature on the current document minus its revocation record, under a higher sequence: what an
    // edit built on an older document would look like.
    const current = openSigned(good, loadAdminKeys([`${adminKey}.pub`], 'test'), PREFIX);
    assert.ok(current.ok);
    const unrevoked = validateUsersFile(current.json, 'etcd');
    delete unrevoked.revoked;
    const cases: [string, string][] = [
      ['rollback', early],
      ['unrevoked', signDocument(unrevoked, nextSequence(current.signed.sequence, Date.now()), PREFIX, readUserSecretKey(adminKey))],
      ['unsigned', JSON.stringify(doc)],
      ['unknown_signer', signDocument(doc, Date.now() + 1_000_000, PREFIX, rogue)],
      ['bad_signature', good.replace('"sequence": ', '"sequence": 1')],
    ];
    for (const [reason, value] of cases) {
      const since = marks();
      await put(value);
      await everyone(`users.rejected (${reason})`, (e) => e.event === 'users.rejected' && e['reason'] === reason, since);
    }
    users.set('mallory', mallory);
    for (const s of servers) {
      const since = s.daemon.events.length;
      await knock(s, mallory);
      await s.daemon.dropped('unknown_key', 5000, since);
    }
    // Back to the good document: the servers already have it; the CLI builds on it again.
    await put(good);
    await add(2, 'bob');
    await grantEverywhere('bob');
  });

  test('a server cut off from etcd keeps its last document and applies a revocation made meanwhile when it reconnects', async () => {
    await add(1, 'carol');
    await grantEverywhere('carol');
    const three = at(3);
    let since = three.daemon.events.length;
    await etcd.cut(3, 'down');
    await three.daemon.event('users.source_outage', 10_000, since);
    const all = marks();
    await cli(1, 'user', 'revoke', 'carol');
    const id = keyIdOf(users.get('carol') ?? assert.fail('carol'));
    await Promise.all([1, 2].map((i) => at(i).daemon.waitFor((e) => e.event === 'grant.closed' && e['keyId'] === id, 5000, all[i - 1], `grant.closed on server ${i}`)));
    assert.equal(await grantsOf(three, 'carol'), 1, 'cut off, server 3 cannot know of the revocation yet');
    since = three.daemon.events.length;
    await etcd.cut(3, 'up');
    await three.daemon.waitFor((e) => e.event === 'grant.closed' && e['keyId'] === id, 15_000, since, 'grant.closed on server 3 after it reconnected');
    assert.ok(three.daemon.events.slice(since).some((e) => e.event === 'users.source_connected'));
    assert.equal(await grantsOf(three, 'carol'), 0);
  });

  test('with the whole etcd cluster stopped, all three keep serving, also a daemon restarted during the outage; all resync when it returns', async () => {
    const since = marks();
    await etcd.stop();
    await everyone('users.source_outage', (e) => e.event === 'users.source_outage', since, 10_000);
    await grantEverywhere('alice');
    const two = at(2);
    await two.daemon.kill('SIGTERM');
    two.daemon = await start(two);
    await two.daemon.event('users.source_outage', 10_000);
    const started = two.daemon.events.find((e) => e.event === 'server.started');
    assert.ok(Number(started?.['users']) > 1, 'the restarted daemon serves the local copy of the last good document');
    await grantEverywhere('alice', [two]);
    await grantEverywhere('bob', [two]);
    const back = marks();
    await etcd.start();
    await everyone('users.source_connected', (e) => e.event === 'users.source_connected', back, 15_000);
    // The carol revocation the restarted daemon had from its copy stays: carol cannot knock anywhere.
    for (const s of servers) {
      const mark = s.daemon.events.length;
      await knock(s, users.get('carol') ?? assert.fail('carol'));
      await s.daemon.dropped('revoked', 5000, mark);
    }
  });
});
