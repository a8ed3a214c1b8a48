// End to end, pcap mode: no socket on the knock port and a firewall rule (outside sesame's table) dropping it, yet knocks are seen by libpcap and open the door; replay, bad packets and IPv6 as in dgram mode.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateServerKeys } from '../../src/protocol/keys.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { parseAddress } from '../../src/protocol/address.ts';
import { retoken, staleWithToken } from '../helpers/knocks.ts';
import { Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const skip = skipReason();
const KNOCK_PORT = 62201;

for (const iface of ['any', 'veth-srv']) {
  describe(`pcap capture on ${iface}`, { skip }, () => {
    let topo: Topology;
    let dir: ServerDir;
    let daemon: Daemon;
    let alice: UserKeys;
    let listeners: { stop: () => Promise<void> }[] = [];
    const knock = (nowMs = Date.now(), server = dir.serverKeys.publicKey): Uint8Array => buildKnock({ access: [{ proto: 'tcp', port: 2222 }] }, alice, server, nowMs, systemRandom);

    before(async () => {
      await loadSodium();
      topo = await createTopology(`e2epcap${iface === 'any' ? 'a' : 'v'}`);
      // A firewall that sesame does not own drops the knock port before any socket could see it.
      const drop = await execIn(topo.server.ns, ['nft', '-f', '-'], {
        input: `table inet sesame_test_drop {\n chain input {\n  type filter hook input priority -200; policy accept;\n  udp dport ${KNOCK_PORT} counter drop\n }\n}\n`,
      });
      assert.equal(drop.code, 0, drop.stderr);
      dir = makeServerDir({ knockPort: KNOCK_PORT, protect: ['tcp/2222'] });
      alice = dir.userKey('alice');
      dir.writeUsers({ alice: userEntry(alice) });
      listeners = [await startTcpListener(topo.server.ns, '0.0.0.0', 2222), await startTcpListener(topo.server.ns, '::', 2222)];
      daemon = new Daemon(topo.server.ns, dir.configPath, ['--capture', 'pcap', '--interface', iface]);
      const started = await daemon.event('server.started', 10_000);
      assert.equal(started['capture'], 'pcap');
    });

    after(async () => {
      await daemon?.kill('SIGTERM').catch(() => {});
      for (const l of listeners) await l.stop().catch(() => {});
      await topo?.destroy();
      dir?.remove();
    });

    test('nothing listens on the knock port', async () => {
      const ss = await execIn(topo.server.ns, ['ss', '-lun']);
      assert.equal(ss.code, 0);
      assert.doesNotMatch(ss.stdout, new RegExp(`:${KNOCK_PORT}\\b`));
    });

    test('a valid knock still opens the protected port, while the drop rule counts the packet', async () => {
      assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 2222, 400), false);
      const since = daemon.events.length;
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, knock());
      const opened = await daemon.event('grant.opened', 3000, since);
      assert.equal(opened['address'], topo.client.v4);
      assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 2222, 400), true);
      const counter = await execIn(topo.server.ns, ['nft', 'list', 'table', 'inet', 'sesame_test_drop']);
      assert.match(counter.stdout, /counter packets [1-9]\d* bytes/, 'the knock was dropped by the firewall, yet seen');
    });

    test('replays, bad packets and other servers\' knocks are refused as in dgram mode', async () => {
      const packet = knock();
      let since = daemon.events.length;
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, packet, topo.client.v4b);
      await daemon.event('knock.accepted', 3000, since);
      since = daemon.events.length;
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, packet, topo.client.v4b);
      await daemon.dropped('replay', 3000, since);
      // pcap mode has no kernel gate before the capture: the daemon's own prefilter checks the token.
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, knock(Date.now(), generateServerKeys().publicKey), topo.client.v4b);
      await daemon.dropped('bad_token', 3000, since);
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, retoken(knock(Date.now(), generateServerKeys().publicKey), dir.serverKeys.publicKey, Date.now()), topo.client.v4b);
      await daemon.dropped('bad_mac', 3000, since);
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, Uint8Array.of(1, 2, 3), topo.client.v4b);
      await daemon.dropped('bad_length', 3000, since);
      await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, knock(staleWithToken(Date.now())), topo.client.v4b);
      await daemon.dropped('stale', 3000, since);
    });

    test('IPv6 knock and connect', async () => {
      assert.equal(await tcpConnect(topo.client.ns, topo.server.v6, 2222, 400), false);
      const since = daemon.events.length;
      await sendUdp(topo.client.ns, topo.server.v6, KNOCK_PORT, knock());
      const opened = await daemon.event('grant.opened', 3000, since);
      assert.equal(opened['address'], parseAddress(topo.client.v6)?.text);
      assert.equal(await tcpConnect(topo.client.ns, topo.server.v6, 2222, 400), true);
    });

    test('SIGTERM stops the daemon cleanly', async () => {
      await daemon.kill('SIGTERM');
      assert.equal(await daemon.exited, 0);
      assert.ok(daemon.events.some((e) => e.event === 'server.stopped'));
    });
  });
}
