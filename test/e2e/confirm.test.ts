// End to end: the knock confirmation (README.md, "Confirmation") with the real daemon, real nftables and the sesame CLI in namespaces: the range is silent, the kernel's reset reaches only the knocking address, once, for seconds; --wait's three outcomes and their exit codes; the server-key fallback of a rotation profile.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { EXIT } from '../../src/errors.ts';
import { CONFIRM } from '../../src/limits.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import type { UserKeys } from '../../src/protocol/keys.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { execIn } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { probeTcp, sendUdp, startTcpListener } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';

const skip = skipReason();
const KNOCK_PORT = 62201;
/** Granted by the knocks that confirm; OTHER stays closed to all but the fallback test. */
const PORT = 2222;
const OTHER = 2223;
const PROBE_MS = 700;
const EXEC_MS = 20_000;

describe('knock confirmation', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let alice: UserKeys;
  let clientConfig: string;
  const listeners: { stop: () => Promise<void> }[] = [];

  const keys = (name: string, serverPub = dir.serverPubPath): string[] => ['-i', join(dir.dir, name), '--server-key', serverPub, '--knock-port', String(KNOCK_PORT), '--config', clientConfig];
  const cli = (...argv: string[]): Promise<ExecResult> => execIn(topo.client.ns, [process.execPath, CLI, ...argv], { timeoutMs: EXEC_MS });
  const explain = (r: ExecResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nlast events: ${JSON.stringify(daemon.events.slice(-4))}`;
  const probe = async (port: number, fromAddress?: string, host = topo.server.v4): Promise<string> => {
    const p = await probeTcp(topo.client.ns, host, port, PROBE_MS, fromAddress === undefined ? {} : { fromAddress });
    return p.state === 'error' ? p.code : p.state;
  };
  /** A knock from the client's first IPv4 address that names confirmation port c, and the daemon's confirm.armed for it. */
  const knockNaming = async (c: number): Promise<void> => {
    const since = daemon.events.length;
    await sendUdp(topo.client.ns, topo.server.v4, KNOCK_PORT, buildKnock({ access: [{ proto: 'tcp', port: PORT }], confirmPort: c }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom), topo.client.v4);
    const armed = await daemon.event('confirm.armed', 3000, since);
    assert.equal(armed['port'], c);
    assert.equal(armed['source'], topo.client.v4);
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2econf');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`, `tcp/${OTHER}`], defaultDurationSeconds: 120, maxDurationSeconds: 300 });
    alice = dir.userKey('alice');
    dir.userKey('mallory');
    dir.writeUsers({ alice: userEntry(alice, { ports: [`tcp/${PORT}`, `tcp/${OTHER}`] }) });
    const made = await promisify(execFile)(process.execPath, [CLI, 'keygen', '--server', '-f', join(dir.dir, 'other.key')]);
    assert.match(made.stdout, /other\.pub/);
    clientConfig = join(dir.dir, 'client.json');
    writeFileSync(clientConfig, '{}\n');
    for (const port of [PORT, OTHER]) for (const host of ['0.0.0.0', '::']) listeners.push(await startTcpListener(topo.server.ns, host, port, `hello from ${port}`));
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    for (const l of listeners) await l.stop().catch(() => {});
    await topo?.destroy();
    dir?.remove();
  });

  test('before any knock the whole confirmation range is silent, over IPv4 and IPv6 (no reset, no ICMP)', async () => {
    const ports = [CONFIRM.defaultFirstPort, 62209, CONFIRM.defaultLastPort];
    const seen = await Promise.all(ports.flatMap((port) => [topo.server.v4, topo.server.v6].map(async (host) => `${host} tcp/${port}: ${await probe(port, undefined, host)}`)));
    assert.deepEqual(seen, ports.flatMap((port) => [topo.server.v4, topo.server.v6].map((host) => `${host} tcp/${port}: timeout`)));
  });

  test('outcome 1, confirmed: knock --wait exits 0 and says the server confirmed it; the confirmation is used up by the client', async () => {
    const since = daemon.events.length;
    const r = await cli('knock', topo.server.v4, ...keys('alice'), '-p', `tcp/${PORT}`, '--wait');
    assert.equal(r.code, EXIT.ok, explain(r));
    assert.match(r.stderr, new RegExp(`tcp/${PORT} on ${topo.server.v4.replaceAll('.', '\\.')} .*is open: the server confirmed this knock`), explain(r));
    const armed = await daemon.event('confirm.armed', 2000, since);
    const c = Number(armed['port']);
    assert.ok(c >= CONFIRM.defaultFirstPort && c <= CONFIRM.defaultLastPort, `confirmation port ${c} in the default range`);
    const opened = daemon.events.findIndex((e, i) => i >= since && e.event === 'grant.opened');
    assert.ok(opened >= 0 && opened < daemon.events.indexOf(armed), 'armed only after the grant is in the kernel');
    assert.equal(await probe(c), 'timeout', 'one answer per knock: the reset the client saw used it up');
  });

  test('the reset goes to the knocking address only, to the port the knock named only, once, and only for seconds', async () => {
    await knockNaming(62210);
    assert.equal(await probe(62210, topo.client.v4b), 'timeout', 'another address of the same client: silence');
    assert.equal(await probe(62211, topo.client.v4), 'timeout', 'the knocking address, another port of the range: silence');
    assert.equal(await probe(62210, topo.client.v4), 'ECONNREFUSED', 'the knocking address, the named port: the kernel\'s reset');
    assert.equal(await probe(62210, topo.client.v4), 'timeout', 'a second SYN: silence again');
    await knockNaming(62212);
    await sleep(CONFIRM.timeoutSeconds * 1000 + 1500);
    assert.equal(await probe(62212, topo.client.v4), 'timeout', `${CONFIRM.timeoutSeconds} s later: silence`);
  });

  test('outcome 2: a grant still open plus a refused knock (wrong server key, unknown key) is NOT reported as confirmed: exit 10', async () => {
    assert.equal(await probe(PORT), 'open', 'the grant of the confirmed knock is still open');
    const since = daemon.events.length;
    const wrongServer = await cli('knock', topo.server.v4, ...keys('alice', join(dir.dir, 'other.pub')), '-p', `tcp/${PORT}`, '--wait');
    assert.equal(wrongServer.code, EXIT.notConfirmed, explain(wrongServer));
    assert.match(wrongServer.stderr, /is reachable, but the server did NOT confirm this knock: an earlier grant/, explain(wrongServer));
    assert.match(wrongServer.stderr, /wrong server key: .*other\.pub/, explain(wrongServer));
    const unknown = await cli('knock', topo.server.v4, ...keys('mallory'), '-p', `tcp/${PORT}`, '--wait');
    assert.equal(unknown.code, EXIT.notConfirmed, explain(unknown));
    await daemon.dropped('unknown_key', 2000, since);
    assert.equal(daemon.events.slice(since).some((e) => e.event === 'knock.accepted' || e.event === 'confirm.armed'), false);
  });

  test('ssh-proxy relays once confirmed, quietly; over an earlier grant with a refused knock it relays but says the knock was not confirmed', async () => {
    const ok = await cli('ssh-proxy', topo.server.v4, String(PORT), ...keys('alice'));
    assert.equal(ok.code, EXIT.ok, explain(ok));
    assert.equal(ok.stdout, `hello from ${PORT}\r\n`);
    assert.equal(ok.stderr, '', explain(ok));
    const refused = await cli('ssh-proxy', topo.server.v4, String(PORT), ...keys('mallory'));
    assert.equal(refused.stdout, `hello from ${PORT}\r\n`, explain(refused));
    assert.match(refused.stderr, /did NOT confirm this knock/, explain(refused));
  });

  test('outcome 3, nothing confirmed: a refused knock with no grant open exits 6 after --timeout, re-knocking meanwhile', async () => {
    const since = daemon.events.length;
    const r = await cli('knock', topo.server.v4, ...keys('mallory'), '-p', `tcp/${OTHER}`, '--wait', '--timeout', '2');
    assert.equal(r.code, EXIT.notOpened, explain(r));
    assert.match(r.stderr, /did not open within 2 s \([2-9] knocks sent/, explain(r));
    await daemon.dropped('unknown_key', 2000, since);
  });

  test('IPv6: confirmed through the confirm6 set', async () => {
    const r = await cli('knock', topo.server.v6, '-6', ...keys('alice'), '-p', `tcp/${PORT}`, '--wait');
    assert.equal(r.code, EXIT.ok, explain(r));
    assert.match(r.stderr, /the server confirmed this knock/, explain(r));
  });

  test('server-key fallback: a rotation profile whose first key the server does not hold knocks again with the next one, and that one is confirmed', async () => {
    const profiles = { profiles: { rot: { host: topo.server.v4, knockPort: KNOCK_PORT, identity: join(dir.dir, 'alice'), serverKeys: [join(dir.dir, 'other.pub'), dir.serverPubPath], ports: [`tcp/${OTHER}`], timeoutSeconds: 2 } } };
    const config = join(dir.dir, 'rotation.json');
    writeFileSync(config, JSON.stringify(profiles));
    const since = daemon.events.length;
    const r = await cli('knock', 'rot', '--config', config, '--wait');
    assert.equal(r.code, EXIT.ok, explain(r));
    assert.match(r.stderr, /the server confirmed this knock/, explain(r));
    assert.match(r.stderr, /with server key .*other\.pub: not confirmed/, explain(r));
    assert.equal((await daemon.event('knock.accepted', 2000, since))['user'], 'alice');
  });

  test('confirmPorts applies on reload; a client whose range is not the server\'s is never told "confirmed" (the control port resets too)', async () => {
    const since = daemon.events.length;
    const config = JSON.parse(readFileSync(dir.configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(dir.configPath, JSON.stringify({ ...config, confirmPorts: '40000-40001' }));
    process.kill(daemon.pid ?? 0, 'SIGHUP');
    // The file watch may reload too: the one that applies the change logs it once the table is set up again.
    await daemon.waitFor((e) => e.event === 'config.reloaded' && Array.isArray(e['applied']) && e['applied'].includes('confirmPorts'), 5000, since, 'config.reloaded with confirmPorts');
    const ok = await cli('knock', topo.server.v4, ...keys('alice'), '-p', `tcp/${PORT}`, '--wait', '--confirm-ports', '40000-40001');
    assert.equal(ok.code, EXIT.ok, explain(ok));
    // The old range is no longer sesame's: nothing listens there, so the host resets every SYN, the control port's too.
    const stale = await cli('knock', topo.server.v4, ...keys('alice'), '-p', `tcp/${PORT}`, '--wait');
    assert.equal(stale.code, EXIT.notConfirmed, explain(stale));
    assert.match(stale.stderr, /the server's confirmPorts are not 62202-62217/, explain(stale));
  });
});
