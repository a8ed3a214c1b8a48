// End to end: a fleet of three real daemons in three server namespaces sharing one signed users document in a real 3-member etcd cluster (its own namespace, one veth to each server): adds and revocations reach all three, refused documents stay refused, edits race without loss, and an etcd outage changes nothing until it ends.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { generateUserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { signDocument } from '../../src/server/users-signed.ts';
import { etcdMissing } from '../../src/harness/etcd.ts';
import { execIn } from '../../src/harness/netns.ts';
import { skipReason } from '../../src/harness/topology.ts';
import { Fleet, keyIdOf, PORT } from '../helpers/fleet.ts';

const skip = skipReason() ?? etcdMissing();
const PREFIX = '/sesame-test/';
/** The bound, from the moment `sesame user revoke` has committed (its exit) to the grant's close on every server. */
const WITHIN_MS = 1000;
const TRIALS = 10;

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
/** pino's ISO time of a log line, in ms. */
const timeOf = (e: { readonly [k: string]: unknown }): number => (typeof e['time'] === 'string' ? Date.parse(e['time']) : NaN);

describe('a fleet on etcd: three servers, one signed users document', { skip }, () => {
  const f = new Fleet('fleet', PREFIX);
  /** The signed document as it was after the first add: validly signed, and older than every later one. */
  let early = '';

  before(async () => {
    await loadSodium();
    await f.start();
  });

  after(() => f.destroy());

  test('a user added on one machine can knock on all three', async () => {
    await f.add(1, 'alice');
    await f.grantEverywhere('alice');
    for (const s of f.servers) assert.equal(await f.grantsOf(s, 'alice'), 1, `alice's grant on server ${s.i}`);
    early = await f.stored();
  });

  test('concurrent edits lose nothing: two CLIs on two machines, and six editors racing in one process', async () => {
    // Six editors in one process read the same revision at once: all but one lose the compare-and-swap and must edit again.
    const racers = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6'];
    const lines = racers.map((n) => {
      const u = generateUserKeys();
      f.users.set(n, u);
      return formatKeyLine(KEY_TYPE.userPublic, u.publicKey, n).trim();
    });
    const script = `const [cfg, admin, lines] = process.argv.slice(1);
const { loadSodium } = await import(${JSON.stringify(new URL('../../src/protocol/sodium.js', import.meta.url).href)});
const { loadConfig } = await import(${JSON.stringify(new URL('../../src/server/config.js', import.meta.url).href)});
const { editEtcdUsers } = await import(${JSON.stringify(new URL('../../src/cli/user-etcd.js', import.meta.url).href)});
await loadSodium(); const config = loadConfig(cfg); let edits = 0;
await Promise.all(JSON.parse(lines).map((line, i) => editEtcdUsers(config, admin, (doc) => { edits++; doc.users['e' + (i + 1)] = { keys: [{ key: line }], ports: ['tcp/${PORT}'] }; return ''; })));
console.log(edits);`;
    const since = f.marks();
    const [racing] = await Promise.all([
      execIn(f.at(2).topo.server.ns, [process.execPath, '--input-type=module', '-e', script, f.at(2).dir.configPath, f.adminKey, JSON.stringify(lines)]),
      f.add(1, 'c1'),
      f.add(2, 'c2'),
    ]);
    assert.equal(racing.code, 0, racing.stderr);
    assert.ok(Number(racing.stdout) > racers.length, `the racing editors lost no compare-and-swap (${racing.stdout.trim()} edits for ${racers.length} users): the race was not tested`);
    const listed = JSON.stringify(JSON.parse(await f.cli(3, 'user', 'list', '--json')));
    for (const n of [...racers, 'c1', 'c2', 'alice']) assert.match(listed, new RegExp(`"${n}"`), `${n} is in the document`);
    await f.everyone('the last racer', (e) => e.event === 'key.added' && e['user'] === 'e6', since);
  });

  test(`revoke on the CLI -> the grant is gone on each of the three servers within ${WITHIN_MS} ms (median of ${TRIALS})`, async () => {
    const fromExit: number[] = [];
    const fromStart: number[] = [];
    // The trial users are written straight to etcd in one signed document (the CLI's adds are tested above); only the revocations under measurement go through the CLI.
    const names = Array.from({ length: TRIALS }, (_, k) => `r${k}`);
    const since0 = f.marks();
    await f.writeDirect((doc) => {
      for (const name of names) {
        const u = generateUserKeys();
        f.users.set(name, u);
        doc.users[name] = { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, u.publicKey, name).trim() }], ports: [`tcp/${PORT}`] };
      }
    });
    await f.everyone('users.reloaded with the trial users', (e) => e.event === 'key.added' && e['user'] === names.at(-1), since0);
    for (const [k, name] of names.entries()) {
      await f.grantEverywhere(name);
      const since = f.marks();
      const t0 = Date.now();
      await f.cli(((k + 1) % 3) + 1, 'user', 'revoke', name);
      const tExit = Date.now();
      const id = keyIdOf(f.keys(name));
      await Promise.all(f.servers.map(async (s, j) => {
        const e = await s.daemon.waitFor((x) => x.event === 'grant.closed' && x['keyId'] === id, 5000, since[j], `grant.closed for ${name} on server ${s.i}`);
        fromExit.push(timeOf(e) - tExit);
        fromStart.push(timeOf(e) - t0);
        assert.ok(timeOf(e) - tExit <= WITHIN_MS, `server ${s.i} closed ${name}'s grant ${timeOf(e) - tExit} ms after the CLI committed`);
        assert.equal(await f.grantsOf(s, name), 0, `no element of ${name} left on server ${s.i}`);
      }));
    }
    process.stdout.write(`# fleet revoke -> grant closed, ${fromExit.length} closes (${TRIALS} revocations x 3 servers): median ${median(fromExit)} ms after the CLI exited (max ${Math.max(...fromExit)}), median ${median(fromStart)} ms after it started\n`);
  });

  test('a document without a trusted admin signature, an older one, or one that drops revocations is refused by all three', async () => {
    const good = await f.stored();
    const mallory = generateUserKeys();
    const doc = { users: { mallory: { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, mallory.publicKey, 'mallory').trim() }], ports: [`tcp/${PORT}`] } } };
    const rogue = generateUserKeys();
    // The admin's own signature on the current document minus its revocation record, under a higher sequence: what an
    // edit built on an older document would look like.
    const { doc: unrevoked, sequence } = await f.current();
    delete unrevoked.revoked;
    const cases: [string, string][] = [
      ['rollback', early],
      ['unrevoked', await f.signed(unrevoked, sequence)],
      ['unsigned', JSON.stringify(doc)],
      ['unknown_signer', signDocument(doc, Date.now() + 1_000_000, PREFIX, rogue)],
      ['bad_signature', good.replace('"sequence": ', '"sequence": 1')],
    ];
    for (const [reason, value] of cases) {
      const since = f.marks();
      await f.put(value);
      await f.everyone(`users.rejected (${reason})`, (e) => e.event === 'users.rejected' && e['reason'] === reason, since);
    }
    f.users.set('mallory', mallory);
    for (const s of f.servers) {
      const since = s.daemon.events.length;
      await f.knock(s, mallory);
      await s.daemon.dropped('unknown_key', 5000, since);
    }
    // Back to the good document: the servers already have it; the CLI builds on it again.
    await f.put(good);
    await f.add(2, 'bob');
    await f.grantEverywhere('bob');
  });

  test('a server cut off from etcd keeps its last document and applies a revocation made meanwhile when it reconnects', async () => {
    await f.add(1, 'carol');
    await f.grantEverywhere('carol');
    const three = f.at(3);
    let since = three.daemon.events.length;
    await f.etcd.cut(3, 'down');
    await three.daemon.event('users.source_outage', 10_000, since);
    const all = f.marks();
    await f.cli(1, 'user', 'revoke', 'carol');
    const id = keyIdOf(f.keys('carol'));
    await Promise.all([1, 2].map((i) => f.at(i).daemon.waitFor((e) => e.event === 'grant.closed' && e['keyId'] === id, 5000, all[i - 1], `grant.closed on server ${i}`)));
    assert.equal(await f.grantsOf(three, 'carol'), 1, 'cut off, server 3 cannot know of the revocation yet');
    since = three.daemon.events.length;
    await f.etcd.cut(3, 'up');
    await three.daemon.waitFor((e) => e.event === 'grant.closed' && e['keyId'] === id, 15_000, since, 'grant.closed on server 3 after it reconnected');
    assert.ok(three.daemon.events.slice(since).some((e) => e.event === 'users.source_connected'));
    assert.equal(await f.grantsOf(three, 'carol'), 0);
  });

  test('with the whole etcd cluster stopped, all three keep serving, also a daemon restarted during the outage; all resync when it returns', async () => {
    const since = f.marks();
    await f.etcd.stop();
    await f.everyone('users.source_outage', (e) => e.event === 'users.source_outage', since, 10_000);
    await f.grantEverywhere('alice');
    const two = f.at(2);
    await f.restart(two);
    await two.daemon.event('users.source_outage', 10_000);
    const started = two.daemon.events.find((e) => e.event === 'server.started');
    assert.ok(Number(started?.['users']) > 1, 'the restarted daemon serves the local copy of the last good document');
    await f.grantEverywhere('alice', [two]);
    await f.grantEverywhere('bob', [two]);
    const back = f.marks();
    await f.etcd.start();
    await f.everyone('users.source_connected', (e) => e.event === 'users.source_connected', back, 15_000);
    // The carol revocation the restarted daemon had from its copy stays: carol cannot knock anywhere.
    for (const s of f.servers) {
      const mark = s.daemon.events.length;
      await f.knock(s, f.keys('carol'));
      await s.daemon.dropped('revoked', 5000, mark);
    }
  });
});
