// End to end with real OpenSSH: sshd behind the real daemon in a namespace, the real ssh client and the sesame CLI (knock --wait, ssh-proxy as ProxyCommand) in another.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddress } from '../../src/protocol/address.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import type { ServerDir } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { sshMissing, startSshd } from '../helpers/sshd.ts';
import type { SshServer } from '../helpers/sshd.ts';
import { startAgent } from '../helpers/ssh-agent.ts';
import type { SshAgent } from '../helpers/ssh-agent.ts';

const skip = skipReason() ?? sshMissing();
const PORT = 2222;
const KNOCK_PORT = 62201;
/** Short, so a grant from one test has expired before the next needs the port closed again. */
const GRANT_SECONDS = 3;
const EXEC_MS = 15_000;

describe('ssh through sesame end to end', { skip }, () => {
  let topo: Topology;
  let dir: ServerDir;
  let daemon: Daemon;
  let sshd: SshServer;
  let clientConfig: string;

  /** Flags every sesame client call shares; an empty client config keeps the caller's own profiles out. */
  const identity = (name: string): string[] => ['-i', join(dir.dir, name), '--server-key', dir.serverPubPath, '--knock-port', String(KNOCK_PORT), '--config', clientConfig];
  const sesameKnock = (host: string, name: string, ...extra: string[]): Promise<ExecResult> =>
    execIn(topo.client.ns, [process.execPath, CLI, 'knock', host, ...identity(name), '-p', `tcp/${PORT}`, '--wait', ...extra], { timeoutMs: EXEC_MS });
  const ssh = (host: string, command: readonly string[], options: readonly string[] = [], input?: string, env?: NodeJS.ProcessEnv): Promise<ExecResult> =>
    execIn(topo.client.ns, sshd.ssh(host, PORT, command, options), { timeoutMs: EXEC_MS, ...(input === undefined ? {} : { input }), ...(env === undefined ? {} : { env }) });
  const viaProxy = (name: string, ...extra: string[]): string[] => ['-o', `ProxyCommand=${[process.execPath, CLI, 'ssh-proxy', '%h', '%p', ...identity(name), ...extra].join(' ')}`];
  let agent: SshAgent;
  const explain = (r: ExecResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nsshd log (tail): ${sshd.log().slice(-2000)}`;

  /** Polls until new connections to host are refused again (the grant expired in the kernel). */
  const closedAgain = async (host: string): Promise<void> => {
    const deadline = Date.now() + (GRANT_SECONDS + 5) * 1000;
    while (await tcpConnect(topo.client.ns, host, PORT, 400)) {
      if (Date.now() > deadline) assert.fail(`tcp/${PORT} on ${host} still open ${GRANT_SECONDS + 5} s later`);
      await sleep(250);
    }
  };

  before(async () => {
    await loadSodium();
    topo = await createTopology('e2essh');
    dir = makeServerDir({ knockPort: KNOCK_PORT, protect: [`tcp/${PORT}`], defaultDurationSeconds: GRANT_SECONDS, maxDurationSeconds: 60 });
    clientConfig = join(dir.dir, 'client.json');
    writeFileSync(clientConfig, '{}\n');
    const alice = dir.userKey('alice');
    dir.userKey('mallory');
    // carol's key exists only in a real ssh-agent: made encrypted by sesame keygen, added through SSH_ASKPASS, then deleted.
    const carol = join(dir.dir, 'carol');
    const made = await execIn(topo.client.ns, [process.execPath, CLI, 'keygen', '-f', carol, '-N', 'carol passphrase', '-C', 'carol']);
    assert.equal(made.code, 0, made.stderr);
    agent = await startAgent();
    const added = await agent.add(carol, 'carol passphrase');
    assert.equal(added.code, 0, added.stderr);
    rmSync(carol);
    dir.writeUsers({ alice: userEntry(alice), carol: { keys: [{ key: readFileSync(`${carol}.pub`, 'utf8').trim() }], ports: [`tcp/${PORT}`] } });
    sshd = await startSshd(topo.server.ns, { ports: [PORT], hosts: [topo.server.v4, topo.server.v6] });
    daemon = new Daemon(topo.server.ns, dir.configPath);
    await daemon.event('server.started', 10_000);
  });

  after(async () => {
    await daemon?.kill('SIGTERM').catch(() => {});
    await sshd?.stop().catch(() => {});
    agent?.stop();
    await topo?.destroy();
    dir?.remove();
  });

  test('before any knock, ssh cannot reach sshd (IPv4 and IPv6)', async () => {
    const [v4, v6] = await Promise.all([ssh(topo.server.v4, ['true']), ssh(topo.server.v6, ['true'])]);
    for (const r of [v4, v6]) {
      assert.equal(r.code, 255, explain(r));
      assert.match(r.stderr, /timed out|refused/i, explain(r));
    }
  });

  test('an unauthorized key: knock --wait exits 6 listing the likely causes, and ssh still fails', async () => {
    const since = daemon.events.length;
    const r = await sesameKnock(topo.server.v4, 'mallory', '--timeout', '2');
    assert.equal(r.code, 6, explain(r));
    for (const cause of [/did not open within 2 s/, /clock/, /server key/, /not authorized/, /revoked/, /knock port/]) assert.match(r.stderr, cause, explain(r));
    await daemon.dropped('unknown_key', 2000, since);
    assert.equal(daemon.events.slice(since).some((e) => e.event === 'knock.accepted'), false);
    const login = await ssh(topo.server.v4, ['true']);
    assert.equal(login.code, 255, explain(login));
  });

  test('sesame knock --wait opens the port; then a plain ssh login succeeds', async () => {
    const since = daemon.events.length;
    const r = await sesameKnock(topo.server.v4, 'alice', '--timeout', '10');
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stderr, new RegExp(`tcp/${PORT} on .* is open`));
    const accepted = await daemon.event('knock.accepted', 2000, since);
    assert.equal(accepted['user'], 'alice');
    assert.equal(accepted['source'], topo.client.v4);
    const login = await ssh(topo.server.v4, ['true']);
    assert.equal(login.code, 0, explain(login));
  });

  test('ssh-proxy as ProxyCommand knocks on its own and relays the session (IPv4), binary-safe both ways', async () => {
    await closedAgain(topo.server.v4);
    const since = daemon.events.length;
    const r = await ssh(topo.server.v4, ['echo', 'hello'], viaProxy('alice'));
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stdout, 'hello\n');
    const opened = await daemon.event('grant.opened', 2000, since);
    assert.equal(opened['user'], 'alice');
    assert.equal(opened['address'], topo.client.v4);
    // 1.5 MB through the relay and its hash back: stdin -> socket and socket -> stdout, with ssh's own integrity checks on top.
    const data = randomBytes(1_100_000).toString('base64');
    const big = await ssh(topo.server.v4, ['sha256sum'], viaProxy('alice'), data);
    assert.equal(big.code, 0, explain(big));
    assert.equal(big.stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'));
  });

  test('ssh-proxy over IPv6', async () => {
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v6, PORT, 400), false, 'no grant for the IPv6 address yet');
    const since = daemon.events.length;
    const r = await ssh(topo.server.v6, ['echo', 'hello'], viaProxy('alice'));
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stdout, 'hello\n');
    const opened = await daemon.event('grant.opened', 2000, since);
    assert.equal(opened['address'], parseAddress(topo.client.v6)?.text);
  });

  test('ProxyCommand ssh-proxy -i carol.pub signs with the key in ssh-agent (no private key on disk) and logs in', async () => {
    await closedAgain(topo.server.v4);
    const since = daemon.events.length;
    const proxy = [process.execPath, CLI, 'ssh-proxy', '%h', '%p', '-i', join(dir.dir, 'carol.pub'), '--server-key', dir.serverPubPath, '--knock-port', String(KNOCK_PORT), '--config', clientConfig, '-v'];
    const r = await ssh(topo.server.v4, ['echo', 'agent'], ['-o', `ProxyCommand=${proxy.join(' ')}`], undefined, { ...process.env, SSH_AUTH_SOCK: agent.socket });
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stdout, 'agent\n');
    assert.match(r.stderr, /identity: ssh-agent key SHA256:/, explain(r));
    const accepted = await daemon.event('knock.accepted', 2000, since);
    assert.equal(accepted['user'], 'carol');
  });

  test('ssh-proxy with an unauthorized key: ssh fails, the proxy exits 6 with the causes', async () => {
    await closedAgain(topo.server.v4);
    const r = await ssh(topo.server.v4, ['true'], viaProxy('mallory', '--timeout', '2'));
    assert.equal(r.code, 255, explain(r));
    assert.match(r.stderr, /did not open within 2 s/, explain(r));
    assert.match(r.stderr, /revoked/, explain(r));
  });
});
