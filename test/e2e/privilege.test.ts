// End to end: the daemon runs as an unprivileged user holding only CAP_NET_ADMIN (ambient, via setpriv) and still grants access; without the capability it refuses to start, with a clear message, before any knock.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const NOBODY = 65534;
const setpriv = (caps: string): string[] => ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', `--inh-caps=${caps}`, `--ambient-caps=${caps}`, `--bounding-set=${caps === '-all' ? '-all' : `-all,${caps}`}`, '--no-new-privs'];

describe('least privilege', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let alice: UserKeys;
  let listener: { stop: () => Promise<void> } | undefined;

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2epriv');
    dir = makeServerDir({ protect: ['tcp/2222'], stateDir: 'state' });
    alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice) });
    // The daemon's user owns its key and state; config and users stay readable to it, nothing more.
    mkdirSync(join(dir.dir, 'state'), { mode: 0o700 });
    chownSync(join(dir.dir, 'state'), NOBODY, NOBODY);
    chownSync(join(dir.dir, 'server.key'), NOBODY, NOBODY);
    chmodSync(dir.dir, 0o755);
    chmodSync(dir.usersPath, 0o644);
    listener = await startTcpListener(topo.server.ns, '0.0.0.0', 2222);
  });

  after(async () => {
    await listener?.stop();
    await topo?.destroy();
    dir?.remove();
  });

  test('as uid 65534 with only CAP_NET_ADMIN, the daemon sets up nftables and grants access', async () => {
    const daemon = new Daemon(topo.server.ns, dir.configPath, [], setpriv('+net_admin'));
    try {
      await daemon.event('server.started', 10_000);
      const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}$`, 'm'), 'runs as the unprivileged user');
      assert.match(status, /^CapEff:\s+0000000000001000$/m, 'effective capabilities: CAP_NET_ADMIN (bit 12) only');
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 2222, 400), false);
      const since = daemon.events.length;
      await sendUdp(topo.client.ns, topo.server.v4, 62201, buildKnock({ access: [{ proto: 'tcp', port: 2222 }] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom));
      await daemon.event('grant.opened', 3000, since);
      assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 2222, 400), true);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  test('without CAP_NET_ADMIN it fails at start, naming the capability, and never listens', async () => {
    const daemon = new Daemon(topo.server.ns, dir.configPath, [], setpriv('-all'));
    const code = await daemon.exited;
    assert.equal(code, 7, 'exit code 7: firewall backend could not be set up');
    const stderr = daemon.stderr.join('');
    assert.match(stderr, /CAP_NET_ADMIN/);
    assert.match(stderr, /cannot set up nftables table inet sesame/);
    assert.equal(daemon.events.some((e) => e.event === 'server.started'), false);
  });
});
