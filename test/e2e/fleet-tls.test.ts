// End to end: the etcd users source over TLS with client certificates (the certificate's CN as etcd user) and with an etcd user and password, against a real etcd member with --client-cert-auth and auth enabled; a client without a certificate gets nothing.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { etcdHosts, etcdMissing, startEtcdCluster } from '../../src/harness/etcd.ts';
import type { EtcdCluster } from '../../src/harness/etcd.ts';
import { execIn, run } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { sendUdp } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const skip = skipReason() ?? etcdMissing();
const TAG = 'fleettls';
const PREFIX = '/sesame-tls/';
const EXIT_NETWORK = 8;

describe('the etcd users source over TLS: client certificates, user and password', { skip }, () => {
  let pki: string;
  let etcd: EtcdCluster;
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  const admin = (): string => join(pki, 'admin');

  const openssl = async (...args: string[]): Promise<void> => {
    const r = await run('openssl', args);
    assert.equal(r.code, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  /** A key and a certificate signed by the test CA, CN = the etcd user it authenticates as. */
  const certificate = async (name: string, cn: string, ext: string): Promise<void> => {
    writeFileSync(join(pki, `${name}.ext`), ext);
    await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', join(pki, `${name}.key`), '-out', join(pki, `${name}.csr`));
    await openssl('x509', '-req', '-in', join(pki, `${name}.csr`), '-CA', join(pki, 'ca.crt'), '-CAkey', join(pki, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', join(pki, `${name}.ext`), '-out', join(pki, `${name}.crt`));
    chmodSync(join(pki, `${name}.key`), 0o600);
  };
  /** A config for the CLI beside the server's: the same server key and admin key, other etcd credentials. */
  const cliConfig = (file: string, etcdSettings: Record<string, unknown>): string => {
    const path = join(dir.dir, file);
    writeFileSync(path, JSON.stringify({ serverKey: 'server.key', stateDir: 'state-cli', users: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, ...etcdSettings } }, adminKeys: ['admin.pub'], protect: ['tcp/2222'] }));
    return path;
  };
  const cli = (config: string, ...args: string[]): Promise<ExecResult> => execIn(topo.server.ns, [process.execPath, CLI, ...args, '-c', config, '--admin-key', admin()]);

  before(async () => {
    await loadSodium();
    pki = mkdtempSync(join(tmpdir(), 'sesame-pki-'));
    await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=sesame test CA', '-keyout', join(pki, 'ca.key'), '-out', join(pki, 'ca.crt'));
    // The member's certificate doubles as etcdctl's, whose CN makes it etcd's root user.
    await certificate('member', 'root', `subjectAltName=${etcdHosts(TAG, 1).map((h) => `IP:${h}`).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    await certificate('sesame', 'sesame', 'extendedKeyUsage=clientAuth\n');
    const kg = await run(process.execPath, [CLI, 'keygen', '-f', admin(), '-C', 'tls admin', '-N', '']);
    assert.equal(kg.code, 0, kg.stderr);
    etcd = await startEtcdCluster(TAG, 1, { ca: join(pki, 'ca.crt'), cert: join(pki, 'member.crt'), key: join(pki, 'member.key') });
    for (const args of [
      ['user', 'add', 'root', '--new-user-password=root-secret', '--interactive=false'],
      ['role', 'add', 'sesame-rw'],
      ['role', 'grant-permission', 'sesame-rw', 'readwrite', '--prefix=true', PREFIX],
      ['user', 'add', 'sesame', '--new-user-password=sesame-secret', '--interactive=false'],
      ['user', 'grant-role', 'sesame', 'sesame-rw'],
      ['auth', 'enable'],
    ]) {
      const r = await etcd.etcdctl(args);
      assert.equal(r.code, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    }
    topo = await createTopology(TAG);
    await etcd.attach(topo.server.ns, 1);
    // The daemon: TLS with the client certificate only, so etcd takes the user from its CN.
    dir = makeServerDir({ usersFile: undefined, users: { etcd: { endpoints: etcd.endpoints, prefix: PREFIX, tls: { ca: join(pki, 'ca.crt'), cert: join(pki, 'sesame.crt'), key: join(pki, 'sesame.key') } } }, adminKeys: ['admin.pub'], protect: ['tcp/2222'] });
    copyFileSync(`${admin()}.pub`, join(dir.dir, 'admin.pub'));
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    await topo?.destroy();
    await etcd?.destroy();
    dir?.remove();
    if (pki !== undefined) rmSync(pki, { recursive: true, force: true });
  });

  test('server --check passes offline: admin keys and etcd credentials load; it warns that there is no local copy yet', async () => {
    const r = await execIn(topo.server.ns, [process.execPath, CLI, 'server', '-c', dir.configPath, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no local copy of the users document yet/);
  });

  test('a daemon authenticated by its client certificate reads what a CLI authenticated by user and password wrote', async () => {
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
    await daemon.event('users.source_connected', 10_000);
    writeFileSync(join(dir.dir, 'etcd.password'), 'sesame-secret\n', { mode: 0o600 });
    const withPassword = cliConfig('cli-password.json', { tls: { ca: join(pki, 'ca.crt'), cert: join(pki, 'sesame.crt'), key: join(pki, 'sesame.key') }, auth: { user: 'sesame', passwordFile: 'etcd.password' } });
    const u = dir.userKey('dora');
    const r = await cli(withPassword, 'user', 'add', 'dora', '--key', join(dir.dir, 'dora.pub'), '--ports', 'tcp/2222');
    assert.equal(r.code, 0, r.stderr);
    await daemon.waitFor((e) => e.event === 'key.added' && e['user'] === 'dora', 5000, 0, 'key.added for dora');
    const since = daemon.events.length;
    await sendUdp(topo.client.ns, topo.server.v4, 62201, buildKnock({ access: [{ proto: 'tcp', port: 2222 }] }, u, dir.serverKeys.publicKey, Date.now(), systemRandom));
    await daemon.waitFor((e) => e.event === 'grant.opened' && e['user'] === 'dora', 5000, since, 'grant.opened for dora');
  });

  test('without a client certificate, or with a wrong password, sesame user gets nothing from etcd and says so', async () => {
    writeFileSync(join(dir.dir, 'wrong.password'), 'not-it\n', { mode: 0o600 });
    const noCert = cliConfig('cli-nocert.json', { tls: { ca: join(pki, 'ca.crt') } });
    const wrong = cliConfig('cli-wrong.json', { tls: { ca: join(pki, 'ca.crt'), cert: join(pki, 'sesame.crt'), key: join(pki, 'sesame.key') }, auth: { user: 'sesame', passwordFile: 'wrong.password' } });
    for (const config of [noCert, wrong]) {
      const r = await cli(config, 'user', 'list');
      assert.equal(r.code, EXIT_NETWORK, `${config}: ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /cannot use etcd at https:/);
    }
  });
});
