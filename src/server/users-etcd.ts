// The etcd users source of a daemon: starts from the last good signed document kept in the state dir, then reads and watches PREFIX + "users" in etcd, applying a document only if a trusted admin signed it and its sequence moves forward; an unreachable etcd leaves the last good document in force (fail-static). Input: untrusted values from etcd.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage, EXIT } from '../errors.ts';
import { readOptionalText, writeFileAtomic } from '../files.ts';
import { ETCD } from '../limits.ts';
import { loadAdminKeys } from './admin-keys.ts';
import type { AdminKeys } from './admin-keys.ts';
import type { EtcdSource, ServerConfig } from './config.ts';
import { etcdClient, readEtcdCredentials, usersKey } from './etcd.ts';
import type { Etcd3, Watcher } from './etcd.ts';
import type { Logger } from './log.ts';
import { openSigned, order } from './users-signed.ts';
import type { SignedDocument } from './users-signed.ts';
import { droppedRevocations } from './users-diff.ts';
import { parseUsers, validateUsersFile } from './users.ts';
import type { UserTable } from './users.ts';

/** What the metrics endpoint reads: where the users document comes from and how fresh it is. */
export interface UsersSourceStatus {
  /** file: a users file; connected: etcd answers; outage: etcd does not, the last good document stays in force. */
  readonly state: 'connected' | 'outage' | 'file';
  /** When etcd last answered (ms since the epoch). */
  readonly lastSyncMs: number | undefined;
  /** The sequence of the signed document in force. */
  readonly documentVersion: number | undefined;
}

let status: UsersSourceStatus = { state: 'file', lastSyncMs: undefined, documentVersion: undefined };

/** The users source's state in this process (one daemon per process). */
export const usersSourceStatus = (): UsersSourceStatus => status;

export interface EtcdUsers {
  /** The table to start with: the local copy of the last good document, or nobody. */
  readonly initial: UserTable;
  /** Starts reading and watching; every newer good document goes to apply, one at a time. */
  start(apply: (next: UserTable) => Promise<void>): void;
  /** Reads the document now (SIGHUP). */
  resync(): Promise<void>;
  close(): Promise<void>;
}

const NOBODY = (): UserTable => parseUsers({ users: {} }, '(no users document yet)');

/** Checks a signed document against the admin keys and the one in force; the table, or why not. */
function check(text: string, admins: AdminKeys, e: EtcdSource, current: { signed: SignedDocument; table: UserTable } | undefined, where: string): { table: UserTable; signed: SignedDocument } | { refused: string; detail: string } | 'same' {
  const opened = openSigned(text, admins, e.prefix);
  if (!opened.ok) return { refused: opened.reason, detail: opened.detail };
  const o = order(current?.signed, opened.signed);
  if (o === 'same') return 'same';
  if (o !== 'newer') return { refused: o, detail: `sequence ${opened.signed.sequence}, the document in force has ${current?.signed.sequence ?? 0}` };
  let table: UserTable;
  try {
    table = parseUsers(opened.json, where);
  } catch (err) {
    return { refused: 'invalid', detail: errorMessage(err) };
  }
  const dropped = current === undefined ? [] : droppedRevocations(current.table, validateUsersFile(opened.json, where));
  if (dropped.length > 0) return { refused: 'unrevoked', detail: `keys revoked in the document in force are missing from its revocation record: ${dropped.join(', ')} (built on an older document?)` };
  return { table, signed: opened.signed };
}

/** The local copy of the last good document (config.usersPath): its table, why it is refused, or undefined if there is none yet. */
export function readLocalCopy(config: ServerConfig, admins: AdminKeys): { table: UserTable; signed: SignedDocument } | { refused: string; detail: string } | undefined {
  if (config.etcd === undefined) return undefined;
  const saved = readOptionalText(config.usersPath, 'local copy of the users document', EXIT.state);
  if (saved === undefined) return undefined;
  const c = check(saved, admins, config.etcd, undefined, config.usersPath);
  return c === 'same' ? undefined : c;
}

export function openEtcdUsers(config: ServerConfig, log: Logger): EtcdUsers {
  const e = config.etcd;
  if (e === undefined) throw new Error('openEtcdUsers without users.etcd');
  const admins = loadAdminKeys(config.adminKeys, config.file);
  const key = usersKey(e);
  const credentials = readEtcdCredentials(e);
  const copy = config.usersPath;
  let current: { signed: SignedDocument; table: UserTable } | undefined;
  let initial = NOBODY();
  const saved = readLocalCopy(config, admins);
  if (saved !== undefined && 'table' in saved) {
    initial = saved.table;
    current = saved;
  } else if (saved !== undefined) {
    log.error({ event: 'users.rejected', source: 'copy', file: copy, reason: saved.refused, errors: saved.detail.split('\n') }, 'the local copy of the users document is refused; nobody may knock until etcd answers');
  }
  status = { state: 'outage', lastSyncMs: undefined, documentVersion: current?.signed.sequence };

  let client: Etcd3 | undefined;
  let watcher: Watcher | undefined;
  let seenRevision = '';
  let closed = false;
  /** The outage is logged once, not at every failed read. */
  let reported = false;
  let timer: NodeJS.Timeout | undefined;
  let apply: (next: UserTable) => Promise<void> = async () => {};
  let queue: Promise<void> = Promise.resolve();
  const serially = (task: () => Promise<void>): Promise<void> => (queue = queue.then(task).catch((err: unknown) => log.error({ event: 'users.apply_failed', err: errorMessage(err) }, 'could not apply the users document')));

  const take = (text: string, revision: string): Promise<void> => serially(async () => {
    if (revision === seenRevision) return;
    seenRevision = revision;
    const c = check(text, admins, e, current, `etcd ${key}`);
    if (c === 'same') return;
    if ('refused' in c) {
      log.error({ event: 'users.rejected', source: 'etcd', key, revision, reason: c.refused, errors: c.detail.split('\n') }, 'users document in etcd refused; keeping the last good version');
      return;
    }
    current = c;
    status = { ...status, documentVersion: c.signed.sequence };
    try {
      mkdirSync(dirname(copy), { recursive: true, mode: 0o700 });
      writeFileAtomic(copy, text, { mode: 0o600, replace: true });
    } catch (err) {
      log.error({ event: 'users.copy_failed', file: copy, err: errorMessage(err) }, 'could not keep a local copy of the users document; it applies, but a restart during an etcd outage would start from the older copy');
    }
    await apply(c.table);
  });

  /** Ends the watch and the client (a watch left on a closed client would keep redialling, and keep the process alive). */
  const drop = (): void => {
    const w = watcher;
    watcher = undefined;
    if (w !== undefined) {
      w.removeAllListeners();
      w.on('error', () => undefined);
      void w.cancel().catch(() => undefined);
    }
    client?.close();
    client = undefined;
  };

  const watch = (on: Etcd3, fromRevision: string): void => {
    const w = on.watch().key(key).startRevision(String(BigInt(fromRevision) + 1n)).watcher();
    watcher = w;
    w.on('put', (kv) => void take(kv.value.toString(), kv.mod_revision));
    w.on('delete', () => log.warn({ event: 'users.deleted', key }, 'the users document was deleted from etcd; the last good version stays in force'));
    // A watch broken for good (its revision compacted away, say): the next read is a full reload, with a new watch.
    w.on('error', (err: Error) => {
      log.warn({ event: 'users.watch_broken', err: errorMessage(err) }, 'etcd watch ended; reading the document again');
      if (watcher === w) watcher = undefined;
      seenRevision = '';
      void w.cancel().catch(() => undefined);
    });
  };

  /** One read: the document, the state, a watch if there is none. A failed read is an outage: a fresh client, so the next read dials anew. */
  const probe = async (): Promise<void> => {
    try {
      client ??= await etcdClient(e, credentials);
      const on = client;
      const res = await on.get(key).exec();
      if (closed) return drop(); // closed during the read: this client is the last one
      if (on !== client) return;
      reported = false;
      if (status.state !== 'connected') log.info({ event: 'users.source_connected', endpoints: e.endpoints, key }, 'etcd answers; users document read');
      status = { ...status, state: 'connected', lastSyncMs: Date.now() };
      const kv = res.kvs[0];
      if (kv === undefined) log.debug({ event: 'users.missing', key }, 'no users document in etcd yet');
      else await take(kv.value.toString(), kv.mod_revision);
      if (watcher === undefined) watch(on, res.header.revision);
    } catch (err) {
      if (closed) return drop();
      if (!reported) log.error({ event: 'users.source_outage', endpoints: e.endpoints, err: errorMessage(err) }, 'etcd unreachable; the last good users document stays in force');
      reported = true;
      status = { ...status, state: 'outage' };
      drop(); // the next read dials anew
    }
  };
  /** One read at a time (the timer and a SIGHUP may ask together). */
  let probing: Promise<void> | undefined;
  const probeOnce = (): Promise<void> => (probing ??= probe().finally(() => {
    probing = undefined;
  }));
  const loop = async (): Promise<void> => {
    await probeOnce();
    if (!closed) timer = setTimeout(() => void loop(), ETCD.probeEveryMs);
  };

  return {
    initial,
    start(onTable) {
      apply = onTable;
      void loop();
    },
    resync: probeOnce,
    async close() {
      closed = true;
      clearTimeout(timer);
      await queue;
      drop();
    },
  };
}
