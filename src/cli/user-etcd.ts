// `sesame user` against etcd: reads the signed users document and checks it as a server would, applies the edit, signs the result with the admin key and writes it back in a compare-and-swap transaction, again from the read on a lost race. Input: the document in etcd (checked before use), operator flags.
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { ETCD } from '../limits.ts';
import { toHex } from '../protocol/bytes.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import { loadAdminKeys, loadAdminSigner } from '../server/admin-keys.ts';
import type { AdminKeys } from '../server/admin-keys.ts';
import type { EtcdSource, ServerConfig } from '../server/config.ts';
import { etcdClient, readEtcdCredentials, usersKey } from '../server/etcd.ts';
import type { Etcd3 } from '../server/etcd.ts';
import { nextSequence, openSigned, signDocument } from '../server/users-signed.ts';
import { parseUsers, validateUsersFile } from '../server/users.ts';
import type { UsersFile } from '../server/users.ts';

interface Current {
  readonly doc: UsersFile;
  readonly sequence: number | undefined;
  /** etcd's mod_revision of the key, or undefined if there is no document yet. */
  readonly revision: string | undefined;
}

const sourceOf = (config: ServerConfig): EtcdSource => {
  if (config.etcd === undefined) throw new Error('not an etcd config');
  return config.etcd;
};

const unreachable = (e: EtcdSource, err: unknown, outcome: string): OperatorError => new OperatorError(`cannot use etcd at ${e.endpoints.join(', ')}: ${errorMessage(err)}; ${outcome}`, EXIT.network);

/** The document in etcd, refused unless a trusted admin signed it (an edit never builds on what a server would refuse). */
async function read(client: Etcd3, e: EtcdSource, admins: AdminKeys): Promise<Current> {
  const key = usersKey(e);
  const res = await client.get(key).exec().catch((err: unknown) => {
    throw unreachable(e, err, 'nothing was changed');
  });
  const kv = res.kvs[0];
  if (kv === undefined) return { doc: { users: {} }, sequence: undefined, revision: undefined };
  const opened = openSigned(kv.value.toString(), admins, e.prefix);
  if (!opened.ok) throw new OperatorError(`the users document in etcd (${key}) is refused (${opened.reason}: ${opened.detail}); the servers refuse it too and keep their last good version`, EXIT.config);
  const where = `etcd ${key}`;
  const doc = validateUsersFile(opened.json, where);
  parseUsers(doc, where);
  return { doc, sequence: opened.signed.sequence, revision: kv.mod_revision };
}

/** The users document for list, show and invite. */
export async function readEtcdUsers(config: ServerConfig): Promise<UsersFile> {
  const e = sourceOf(config);
  const client = await etcdClient(e, readEtcdCredentials(e));
  try {
    return (await read(client, e, loadAdminKeys(config.adminKeys, config.file))).doc;
  } finally {
    client.close();
  }
}

/** Read, edit, sign, compare-and-swap; returns what edit said. Two admins at once: the loser reads again and re-applies its edit. */
export async function editEtcdUsers(config: ServerConfig, adminKeyFlag: string | undefined, edit: (doc: UsersFile, nowIso: string) => string): Promise<string> {
  const e = sourceOf(config);
  const admins = loadAdminKeys(config.adminKeys, config.file);
  const admin = await loadAdminSigner(adminKeyFlag);
  const adminId = toHex(deriveKeyId(admin.publicKey));
  if (!admins.has(adminId)) throw new OperatorError(`the admin key ${adminId} is not in ${config.file}'s adminKeys: the servers would refuse what it signs; nothing was changed`, EXIT.key);
  const key = usersKey(e);
  const client = await etcdClient(e, readEtcdCredentials(e));
  try {
    for (let attempt = 0; attempt < ETCD.maxEditAttempts; attempt++) {
      const current = await read(client, e, admins);
      const said = edit(current.doc, new Date().toISOString());
      parseUsers(current.doc, `the edited document for ${key}`); // it must load exactly as the servers will load it
      const text = signDocument(current.doc, nextSequence(current.sequence, Date.now()), e.prefix, admin);
      const unchanged = current.revision === undefined ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', current.revision);
      const res = await unchanged.then(client.put(key).value(text)).commit().catch((err: unknown) => {
        throw unreachable(e, err, 'the change may or may not have been written: sesame user list shows what is there');
      });
      if (res.succeeded) return said;
    }
  } finally {
    client.close();
  }
  throw new OperatorError(`the users document in etcd changed under ${ETCD.maxEditAttempts} attempts in a row (other admins editing); nothing was changed`, EXIT.failure);
}
