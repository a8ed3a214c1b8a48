// Signed users documents: what a server accepts (a trusted admin's signature over this prefix, sequence and text) and refuses (unsigned, unknown signer, any changed byte, another prefix, a lower sequence, two documents under one sequence); and the etcd config that selects them.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { toHex } from '../../src/protocol/bytes.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { deriveKeyId, generateUserKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { OperatorError } from '../../src/errors.ts';
import { loadAdminKeys } from '../../src/server/admin-keys.ts';
import { parseConfig } from '../../src/server/config.ts';
import { droppedRevocations } from '../../src/server/users-diff.ts';
import { parseUsers } from '../../src/server/users.ts';
import { nextSequence, openSigned, order, REFUSED, signDocument } from '../../src/server/users-signed.ts';
import type { SignedDocument } from '../../src/server/users-signed.ts';

let admin: UserKeys;
let other: UserKeys;
const PREFIX = '/sesame/';
const doc = { users: { alice: { keys: [], ports: ['tcp/22'] } } };
const line = (u: UserKeys): string => formatKeyLine(KEY_TYPE.userPublic, u.publicKey, 'admin').trim();

before(async () => {
  await loadSodium();
  admin = generateUserKeys();
  other = generateUserKeys();
});

const admins = () => loadAdminKeys([line(admin)], 'config.json');
const opened = (text: string, prefix = PREFIX): SignedDocument => {
  const o = openSigned(text, admins(), prefix);
  assert.ok(o.ok, o.ok ? '' : `${o.reason}: ${o.detail}`);
  return o.signed;
};
const reason = (text: string, prefix = PREFIX): string => {
  const o = openSigned(text, admins(), prefix);
  assert.ok(!o.ok, 'accepted');
  return o.reason;
};
/** The envelope with one field replaced. */
const edited = (text: string, field: string, value: unknown): string => JSON.stringify({ ...(JSON.parse(text) as object), [field]: value });

test('a document signed by a listed admin key opens, with its sequence and the exact document', () => {
  const text = signDocument(doc, 42, PREFIX, admin);
  const s = opened(text);
  assert.equal(s.sequence, 42);
  assert.equal(s.signer, toHex(deriveKeyId(admin.publicKey)));
  assert.deepEqual(JSON.parse(s.document), doc);
});

test('refused: unsigned, malformed, unknown signer, a changed document, sequence or signature, another prefix', () => {
  const text = signDocument(doc, 42, PREFIX, admin);
  const s = JSON.parse(text) as SignedDocument;
  const cases: [string, string, string?][] = [
    [JSON.stringify(doc), REFUSED.unsigned],
    ['not json', REFUSED.malformed],
    [edited(text, 'extra', 1), REFUSED.malformed],
    [signDocument(doc, 42, PREFIX, other), REFUSED.unknownSigner],
    [edited(text, 'document', s.document.replace('tcp/22', 'tcp/23')), REFUSED.badSignature],
    [edited(text, 'sequence', 43), REFUSED.badSignature],
    [edited(text, 'signature', `${s.signature.startsWith('A') ? 'B' : 'A'}${s.signature.slice(1)}`), REFUSED.badSignature],
    [text, REFUSED.badSignature, '/other/'],
  ];
  for (const [t, why, prefix] of cases) assert.equal(reason(t, prefix), why, t.slice(0, 80));
});

test('the sequence never goes back; the same sequence must carry the same document', () => {
  const a = opened(signDocument(doc, 10, PREFIX, admin));
  const b = opened(signDocument({ users: {} }, 11, PREFIX, admin));
  const sameSeq = opened(signDocument({ users: {} }, 10, PREFIX, admin));
  assert.equal(order(undefined, a), 'newer');
  assert.equal(order(a, b), 'newer');
  assert.equal(order(b, a), REFUSED.rollback);
  assert.equal(order(a, a), 'same');
  assert.equal(order(a, sameSeq), REFUSED.equivocation);
  assert.equal(nextSequence(undefined, 1000), 1000);
  assert.equal(nextSequence(5000, 1000), 5001, 'a clock behind the last sequence still moves forward');
});

test('config: users.etcd selects etcd, needs adminKeys (files relative to the config, or key lines); usersFile and users exclude each other', () => {
  const base = { serverKey: 'server.key', protect: ['tcp/22'], stateDir: '/var/lib/s' };
  const etcd = { etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/sesame/' } };
  const c = parseConfig({ ...base, users: etcd, adminKeys: ['admin.pub', line(admin)] }, '/etc/sesame/config.json');
  assert.deepEqual(c.etcd?.endpoints, ['http://127.0.0.1:2379']);
  assert.deepEqual(c.adminKeys, ['/etc/sesame/admin.pub', line(admin)]);
  assert.equal(c.usersPath, '/var/lib/s/users-etcd.signed.json', 'the local copy of the last good document');
  const refused = (json: object): string => {
    try {
      parseConfig(json, 'c.json');
    } catch (err) {
      assert.ok(err instanceof OperatorError);
      return err.message;
    }
    return assert.fail('accepted');
  };
  assert.match(refused({ ...base, users: etcd }), /adminKeys/);
  assert.match(refused({ ...base, users: etcd, usersFile: 'u.json', adminKeys: ['a.pub'] }), /give exactly one of "usersFile", "users"/);
  assert.match(refused({ ...base, users: { etcd: { ...etcd.etcd, endpoints: ['https://10.0.0.1:2379'] } }, adminKeys: ['a.pub'] }), /tls/);
  assert.throws(() => loadAdminKeys(['not a key'], 'c.json'), /c\.json: \/adminKeys\/0/);
});

test('a next document must keep every revocation of the one in force (active or reinstated), or it is built on an older one', () => {
  const bob = line(other);
  const revoked = { users: {}, revoked: [{ key: bob, user: 'bob', at: '2026-01-01' }] };
  const before = parseUsers(revoked, 'doc');
  assert.deepEqual(droppedRevocations(before, { users: {} }), [toHex(deriveKeyId(other.publicKey))]);
  assert.deepEqual(droppedRevocations(before, revoked), []);
  assert.deepEqual(droppedRevocations(before, { users: { bob: { keys: [{ key: bob }], ports: ['tcp/22'] } }, revoked: [{ key: bob, user: 'bob', at: '2026-01-01', reinstated: { at: '2026-01-02' } }] }), [], 'a reinstatement keeps the record');
});
