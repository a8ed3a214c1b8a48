// End to end, bounded floods on the knock port (issue 16): junk from thousands of forged source addresses (a raw socket in the client namespace), and junk that forges the legitimate user's own address. A legitimate knock must be granted during each; the kernel gate (slot tokens) is what makes the second possible.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const PORT = 2222;
const KNOCK_PORT = 62201;
const RAW = fileURLToPath(new URL('../../../test/tools/flood-raw4.py', import.meta.url));
/** Each flood: at most this long and this many packets. */
const FLOOD_SECONDS = 6;
const KNOCKS = 5;
const FLOOD_MAX_PACKETS = 600_000;

describe('floods on the knock port', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let alice: UserKeys;
  let listener: { stop: () => Promise<void> } | undefined;

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2eflood');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], defaultDurationSeconds: 2 });
    alice = dir.userKey('alice');
    dir.writeUsers({ alice: userEntry(alice) });
    listener = await startTcpListener(topo.server.ns, '0.0.0.0', PORT);
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    await listener?.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  /** Starts a bounded raw-socket flood from the client namespace; resolves with what it sent. */
  const flood = (args: Record<string, unknown>): { done: Promise<{ sent: number; sources: number }>; ended: () => boolean } => {
    let over = false;
    const done = execIn(topo.client.ns, ['python3', RAW, JSON.stringify({ dst: topo.server.v4, port: KNOCK_PORT, seconds: FLOOD_SECONDS, maxPackets: FLOOD_MAX_PACKETS, bytes: 193, ...args })], { timeoutMs: (FLOOD_SECONDS + 20) * 1000 }).then((r) => {
      over = true;
      if (r.code !== 0) throw new Error(`flooder failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as { sent: number; sources: number };
    });
    return { done, ended: () => over };
  };

  /**
   * Five knocks from the user's address during the flood, one after another; each must be granted while the flood is
   * still on (4 of 5 at least: UDP may lose one). A knock that slips through a pause in the flood is not enough.
   */
  const knocksThrough = async (ended: () => boolean): Promise<void> => {
    await sleep(700); // the flood is under way
    const verdicts: string[] = [];
    for (let i = 0; i < KNOCKS; i++) {
      const since = daemon.events.length;
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, buildKnock({ access: [{ proto: 'tcp', port: PORT }] }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom), topo.client.v4);
      const granted = await daemon.waitFor((e) => e.event === 'grant.opened' && e['address'] === topo.client.v4, 800, since).then(() => true, () => false);
      verdicts.push(!granted ? 'lost' : ended() ? 'after the flood' : 'granted');
    }
    assert.ok(verdicts.filter((v) => v === 'granted').length >= KNOCKS - 1, `knocks during the flood: ${verdicts.join(', ')}`);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, PORT, 400, topo.client.v4), true, 'the port opened for the user');
  };

  test('junk forging the user\'s own address: the knock is granted (the meter counts only packets with a valid token)', async () => {
    const f = flood({ sources: 1, source: topo.client.v4 });
    await knocksThrough(f.ended);
    const r = await f.done;
    assert.ok(r.sent >= 10_000, `the flood ran (${r.sent} packets)`);
    await sleep(2200); // the 2 s grant ends before the next test
  });

  test('junk from 4,096 forged source addresses: the knock is granted, and the forged sources never reach the per-source meter', async () => {
    const f = flood({ sources: 4096, sourceBase: '10.250' });
    await knocksThrough(f.ended);
    const r = await f.done;
    assert.ok(r.sent >= 10_000 && r.sources === 4096, `the flood ran (${r.sent} packets)`);
    const meter = await execIn(topo.server.ns, ['nft', 'list', 'set', 'inet', 'sesame', 'knockers4']);
    assert.doesNotMatch(meter.stdout, /10\.250\./, 'packets without a token die before the meter: no forged source has an entry');
  });
});
