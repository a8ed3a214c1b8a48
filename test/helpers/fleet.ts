// Test fixture for the fleet tests: a real etcd cluster (src/harness/etcd.ts), three server namespaces each linked to it and running the real daemon with the etcd users source, an admin key made by the real CLI, and the steps the tests repeat (CLI on a server, knocks, grants in the kernel, the document in etcd). Trusts the test code that calls it.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { toHex } from '../../src/protocol/bytes.ts';
import { loadSigningKey } from '../../src/protocol/keyfile.ts';
import { deriveKeyId } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadAdminKeys } from '../../src/server/admin-keys.ts';
import { readTable } from '../../src/server/nft-read.ts';
import { nextSequence, openSigned, signDocument } from '../../src/server/users-signed.ts';
import { validateUsersFile } from '../../src/server/users.ts';
import type { UsersFile } from '../../src/server/users.ts';
import { startEtcdCluster } from '../../src/harness/etcd.ts';
import type { EtcdCluster } from '../../src/harness/etcd.ts';
import type { LogEvent } from '../../src/harness/daemon-log.ts';
import { execIn, run } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener } from '../../src/harness/programs.ts';
import { createTopology } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir } from './daemon.ts';
import type { ServerDir } from './daemon.ts';

export const PORT = 2222;
const KNOCK_PORT = 62201;

export interface Server {
  readonly i: number;
  readonly topo: Topology;
  readonly dir: ServerDir;
  daemon: Daemon;
}

export const keyIdOf = (u: UserKeys): string => toHex(deriveKeyId(u.publicKey));

export class Fleet {
  readonly servers: Server[] = [];
  readonly users = new Map<string, UserKeys>();
  private readonly listeners: { stop: () => Promise<void> }[] = [];
  private etcdCluster: EtcdCluster | undefined;
  private adminDir: string | undefined;

  readonly tag: string;
  readonly prefix: string;

  constructor(tag: string, prefix: string) {
    this.tag = tag;
    this.prefix = prefix;
  }

  get etcd(): EtcdCluster {
    return this.etcdCluster ?? assert.fail('no etcd cluster');
  }

  get adminKey(): string {
    return join(this.adminDir ?? assert.fail('no admin key'), 'admin');
  }

  /** The admin key (real CLI), the etcd cluster, then three linked servers whose daemons have read etcd. */
  async start(): Promise<void> {
    this.adminDir = mkdtempSync(join(tmpdir(), 'sesame-admin-'));
    const kg = await run(process.execPath, [CLI, 'keygen', '-f', this.adminKey, '-C', 'fleet admin', '-N', '']);
    assert.equal(kg.code, 0, kg.stderr);
    this.etcdCluster = await startEtcdCluster(this.tag);
    for (const i of [1, 2, 3]) {
      const topo = await createTopology(`${this.tag}${i}`);
      await this.etcd.attach(topo.server.ns, i);
      const dir = makeServerDir({ usersFile: undefined, users: { etcd: { endpoints: this.etcd.endpoints, prefix: this.prefix } }, adminKeys: ['admin.pub'], knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], maxDurationSeconds: 300 });
      copyFileSync(`${this.adminKey}.pub`, join(dir.dir, 'admin.pub'));
      this.listeners.push(await startTcpListener(topo.server.ns, '0.0.0.0', PORT));
      this.servers.push({ i, topo, dir, daemon: new Daemon(topo.server.ns, dir.configPath) });
    }
    await Promise.all(this.servers.map(async (s) => {
      await s.daemon.event('server.started', 10_000);
      await s.daemon.event('users.source_connected', 10_000);
    }));
  }

  async destroy(): Promise<void> {
    for (const s of this.servers) await s.daemon.kill('SIGTERM').catch(() => {});
    for (const l of this.listeners) await l.stop().catch(() => {});
    for (const s of this.servers) {
      await s.topo.destroy();
      s.dir.remove();
    }
    await this.etcdCluster?.destroy();
    if (this.adminDir !== undefined) rmSync(this.adminDir, { recursive: true, force: true });
  }

  at(i: number): Server {
    return this.servers[i - 1] ?? assert.fail(`no server ${i}`);
  }

  async restart(s: Server): Promise<void> {
    await s.daemon.kill('SIGTERM');
    s.daemon = new Daemon(s.topo.server.ns, s.dir.configPath);
    await s.daemon.event('server.started', 10_000);
  }

  /** The real CLI run on server i (inside its namespace, as an admin logged in there would). */
  async cli(i: number, ...args: string[]): Promise<string> {
    const r = await execIn(this.at(i).topo.server.ns, [process.execPath, CLI, ...args, '-c', this.at(i).dir.configPath, '--admin-key', this.adminKey]);
    assert.equal(r.code, 0, `sesame ${args.join(' ')} on server ${i}: ${r.stderr}`);
    return r.stdout;
  }

  knock(s: Server, u: UserKeys): Promise<void> {
    return sendUdp(s.topo.client.ns, s.topo.server.v4, KNOCK_PORT, buildKnock({ access: [{ proto: 'tcp', port: PORT }], durationSeconds: 300 }, u, s.dir.serverKeys.publicKey, Date.now(), systemRandom));
  }

  keys(name: string): UserKeys {
    return this.users.get(name) ?? assert.fail(`no keys for ${name}`);
  }

  /** Knocks as name on every server (or those listed) and waits for each grant. */
  async grantEverywhere(name: string, list: readonly Server[] = this.servers): Promise<void> {
    const u = this.keys(name);
    await Promise.all(list.map(async (s) => {
      const since = s.daemon.events.length;
      await this.knock(s, u);
      await s.daemon.waitFor((e) => e.event === 'grant.opened' && e['user'] === name, 5000, since, `grant.opened for ${name} on server ${s.i}`);
    }));
  }

  /** Adds name (fresh keys) with the CLI on server i, and waits until every daemon has the key. */
  async add(i: number, name: string): Promise<void> {
    const u = this.at(i).dir.userKey(name);
    this.users.set(name, u);
    const since = this.marks();
    await this.cli(i, 'user', 'add', name, '--key', join(this.at(i).dir.dir, `${name}.pub`), '--ports', `tcp/${PORT}`);
    await this.everyone(`key.added for ${name}`, (e) => e.event === 'key.added' && e['keyId'] === keyIdOf(u), since);
  }

  /** name's grants in server s's kernel. */
  async grantsOf(s: Server, name: string): Promise<number> {
    const r = await execIn(s.topo.server.ns, ['nft', '-j', 'list', 'table', 'inet', 'sesame']);
    assert.equal(r.code, 0, r.stderr);
    const id = keyIdOf(this.keys(name));
    return readTable(r.stdout).grants.filter((g) => g.owner.keyIdHex === id).length;
  }

  /** The value of PREFIX + users in etcd. */
  async stored(): Promise<string> {
    const r = await this.etcd.etcdctl(['get', `${this.prefix}users`, '--print-value-only']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.replace(/\n$/, '');
  }

  async put(value: string): Promise<void> {
    const r = await this.etcd.etcdctl(['put', `${this.prefix}users`], value);
    assert.equal(r.code, 0, r.stderr);
  }

  /** The document in etcd, opened with the admin key. */
  async current(): Promise<{ doc: UsersFile; sequence: number }> {
    const opened = openSigned(await this.stored(), loadAdminKeys([`${this.adminKey}.pub`], 'test'), this.prefix);
    assert.ok(opened.ok);
    return { doc: validateUsersFile(opened.json, 'etcd'), sequence: opened.signed.sequence };
  }

  /** doc signed by the admin key under a sequence after `after`. */
  async signed(doc: UsersFile, after: number): Promise<string> {
    return signDocument(doc, nextSequence(after, Date.now()), this.prefix, (await loadSigningKey(this.adminKey)).keys);
  }

  /** Edits the document in etcd directly, signed with the admin key (test set-up, not the CLI under test). */
  async writeDirect(edit: (doc: UsersFile) => void): Promise<void> {
    const { doc, sequence } = await this.current();
    edit(doc);
    await this.put(await this.signed(doc, sequence));
  }

  /** Waits for a matching event on every daemon, each from its mark in since. */
  everyone(what: string, match: (e: LogEvent) => boolean, since: readonly number[], timeoutMs = 5000): Promise<LogEvent[]> {
    return Promise.all(this.servers.map((s, j) => s.daemon.waitFor(match, timeoutMs, since[j], `${what} on server ${s.i}`)));
  }

  marks(): number[] {
    return this.servers.map((s) => s.daemon.events.length);
  }
}
