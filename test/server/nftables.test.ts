// nftables backend tests: input checks in-process, then the real kernel in a server/client namespace pair with the backend running inside the server namespace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddress } from '../../src/protocol/address.ts';
import type { Address } from '../../src/protocol/address.ts';
import { NftablesFirewall } from '../../src/server/nftables.ts';
import { confirmCommand } from '../../src/server/nft-confirm.ts';
import { closeCommand, grantCommand, setupScript, tokensCommand } from '../../src/server/nft-rules.ts';
import { execIn, spawnIn } from '../../src/harness/netns.ts';
import { openHeldConnection, startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import type { DriverRequest, DriverResponse, WireEntry, WireGrant, WireTarget } from '../tools/nft-driver.ts';

const PROTECTED = 2222;
const OPEN = 2223;
const NO_CONNECT_MS = 700;
const CONNECT_MS = 3_000;
const addr = (text: string): Address => parseAddress(text) ?? assert.fail(text);

describe('input checks (no nft needed)', () => {
  // A path that cannot run: a check that let bad input through would fail with a spawn error instead.
  const fw = new NftablesFirewall({ nftPath: '/nonexistent/nft' });
  const owner = { keyIdHex: '00112233445566778899aabbccddeeff', mark: 0x80112233 } as const;
  const ok = { address: addr('10.0.0.1'), access: { proto: 'tcp', port: 22 }, ttlSeconds: 30, owner } as const;
  const live = { ...ok, expiresInSeconds: 30 } as const;

  test('table names are plain identifiers', () => {
    assert.throws(() => new NftablesFirewall({ table: 'x; flush ruleset' }), /table name/);
    assert.throws(() => new NftablesFirewall({ table: '' }), /table name/);
  });

  test('bad ports, protocols, durations and addresses are refused before nft runs', async () => {
    await assert.rejects(fw.grant([{ ...ok, access: { proto: 'tcp', port: 0 } }]), /invalid access/);
    await assert.rejects(fw.grant([{ ...ok, access: { proto: 'tcp', port: 65_536 } }]), /invalid access/);
    await assert.rejects(fw.grant([{ ...ok, access: JSON.parse('{"proto":"icmp","port":1}') }]), /invalid access/);
    await assert.rejects(fw.grant([{ ...ok, ttlSeconds: 0 }]), /ttlSeconds/);
    await assert.rejects(fw.grant([{ ...ok, ttlSeconds: 1.5 }]), /ttlSeconds/);
    await assert.rejects(fw.grant([{ ...ok, ttlSeconds: 86_401 }]), /ttlSeconds/);
    await assert.rejects(fw.grant([{ ...ok, address: { family: 4, bytes: new Uint8Array(16), text: '::' } }]), /address/);
    await assert.rejects(fw.close([{ ...live, access: { proto: 'udp', port: -1 } }]), /invalid access/);
    await assert.rejects(fw.grant([{ ...ok, owner: { ...owner, mark: 0 } }]), /mark of 0/);
    await assert.rejects(fw.grant([{ ...ok, owner: { ...owner, mark: 2 ** 32 } }]), /32-bit/);
    await assert.rejects(fw.grant([{ ...ok, owner: { ...owner, keyIdHex: 'x" } ; flush ruleset ; #' } }]), /32 lowercase hex/);
    await assert.rejects(fw.setRevokedMarks([1.5]), /32-bit/);
  });

  test('a missing nft binary fails the request rather than hanging, and stop() still returns', async () => {
    const lost = new NftablesFirewall({ nftPath: '/nonexistent/nft' });
    await assert.rejects(lost.grant([ok]), /nft failed \(spawn \/nonexistent\/nft ENOENT\)/);
    await assert.rejects(lost.close([live]), /ENOENT/);
    await assert.rejects(lost.list(), /ENOENT/);
    await lost.stop();
    await assert.rejects(lost.grant([ok]), /closed/);
  });

  test('element text comes from the address bytes, not its text', () => {
    const forged = { family: 4, bytes: Uint8Array.of(10, 0, 0, 1), text: '10.0.0.1 } ; flush ruleset ; add element inet sesame allow4 {' } as const;
    const line = grantCommand('sesame', [{ ...ok, address: forged }]);
    assert.equal(line, 'add element inet sesame allow4 { 10.0.0.1 . tcp . 22 : 0x80112233 }; delete element inet sesame allow4 { 10.0.0.1 . tcp . 22 }; '
      + 'add element inet sesame allow4 { 10.0.0.1 . tcp . 22 timeout 30s comment "00112233445566778899aabbccddeeff" : 0x80112233 }');
  });

  test('one transaction per call: duplicates collapse (last ttl wins), families go to their own map, close adds no timeout', () => {
    const v6 = { ...ok, address: addr('fd00::1'), ttlSeconds: 5 };
    const c = 'comment "00112233445566778899aabbccddeeff" : 0x80112233';
    assert.equal(grantCommand('t', [ok, v6, { ...ok, ttlSeconds: 9 }]),
      `add element inet t allow4 { 10.0.0.1 . tcp . 22 : 0x80112233 }; delete element inet t allow4 { 10.0.0.1 . tcp . 22 }; add element inet t allow4 { 10.0.0.1 . tcp . 22 timeout 9s ${c} }; `
      + `add element inet t allow6 { fd00::1 . tcp . 22 : 0x80112233 }; delete element inet t allow6 { fd00::1 . tcp . 22 }; add element inet t allow6 { fd00::1 . tcp . 22 timeout 5s ${c} }`);
    assert.equal(closeCommand('t', [live, live]), 'add element inet t allow4 { 10.0.0.1 . tcp . 22 : 0x80112233 }; delete element inet t allow4 { 10.0.0.1 . tcp . 22 }');
    assert.equal(grantCommand('t', []), '');
  });

  test('the setup script declares the table idempotently, deduplicates protected ports, and claims the table in the same transaction', () => {
    const setup = { protectedPorts: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }, { proto: 'tcp', port: 22 }], maxGrants: 100, revokedMarks: [0x80000005], daemon: { pid: 42, startTicks: 7 }, established: [{ remote: addr('10.0.0.9'), remotePort: 50000, localPort: 22 }] } as const;
    const plan = { staleOwners: [{ pid: 41, startTicks: 6 }], legacySets: false, alreadyOwner: false };
    const script = setupScript('sesame', setup, plan);
    assert.match(script, /^add element inet sesame protected \{ tcp \. 22, udp \. 53 \}$/m);
    assert.match(script, /^add map inet sesame allow4 \{ type ipv4_addr \. inet_proto \. inet_service : mark; flags timeout; size 100; \}$/m);
    assert.match(script, /^flush set inet sesame revoked\nadd element inet sesame revoked \{ 0x80000005 \}$/m);
    assert.match(script, /^delete element inet sesame owner \{ 0x00000029 \. 0x00000006 \}\ncreate element inet sesame owner \{ 0x0000002a \. 0x00000007 \}\n$/m);
    assert.doesNotMatch(script, /delete table|flush table|flush (set|map) inet sesame allow|delete set/);
    assert.match(script, /^add element inet sesame preexisting4 \{ 10\.0\.0\.9 \. 50000 \. 22 timeout 86400s \}$/m);
    assert.doesNotMatch(setupScript('sesame', { ...setup, protectedPorts: [], revokedMarks: [], established: [] }, { ...plan, staleOwners: [] }), /add element/);
    assert.doesNotMatch(setupScript('sesame', setup, { ...plan, alreadyOwner: true }), /create element/);
    assert.match(setupScript('sesame', setup, { ...plan, legacySets: true }), /^flush chain inet sesame input\ndelete set inet sesame allow4\ndelete set inet sesame allow6$/m);
  });

  test('the confirmation range: a SYN in the confirm set is answered once with a reset, everything else to the range is dropped; elements rebuilt from bytes', () => {
    const setup = { protectedPorts: [{ proto: 'tcp', port: 22 }], maxGrants: 100, revokedMarks: [], daemon: { pid: 42, startTicks: 7 }, established: [], confirmPorts: { first: 62202, last: 62217 } } as const;
    const script = setupScript('sesame', setup, { staleOwners: [], legacySets: false, alreadyOwner: true });
    assert.match(script, /^add set inet sesame confirm4 \{ type ipv4_addr \. inet_service; size 65535; flags dynamic,timeout; timeout 5s; \}$/m);
    const rules = script.split('\n').filter((l) => l.includes('62202-62217'));
    assert.deepEqual(rules, [
      'add rule inet sesame input tcp dport 62202-62217 tcp flags & (fin|syn|rst|ack) == syn ip saddr . tcp dport @confirm4 delete @confirm4 { ip saddr . tcp dport } reject with tcp reset',
      'add rule inet sesame input tcp dport 62202-62217 tcp flags & (fin|syn|rst|ack) == syn ip6 saddr . tcp dport @confirm6 delete @confirm6 { ip6 saddr . tcp dport } reject with tcp reset',
      'add rule inet sesame input tcp dport 62202-62217 drop',
    ]);
    assert.ok(script.indexOf(rules[0] ?? '') > script.indexOf('iif "lo" accept') && script.indexOf(rules[2] ?? '') < script.indexOf('ct state established'), 'after loopback, before anything that accepts');
    assert.doesNotMatch(setupScript('sesame', { protectedPorts: setup.protectedPorts, maxGrants: 100, revokedMarks: [], daemon: setup.daemon, established: [] }, { staleOwners: [], legacySets: false, alreadyOwner: true }), /reject/);
    assert.equal(confirmCommand('sesame', addr('10.0.0.1'), 62210), 'add element inet sesame confirm4 { 10.0.0.1 . 62210 timeout 5s }');
    assert.equal(confirmCommand('sesame', addr('fd00::1'), 62217), 'add element inet sesame confirm6 { fd00::1 . 62217 timeout 5s }');
    assert.throws(() => confirmCommand('sesame', addr('10.0.0.1'), 0), /not a port/);
  });

  test('udp mode: the knock port guard runs trickle, length, token, meter, accept in that order; the tokens are replaced in one transaction with their timeouts', () => {
    const setup = { protectedPorts: [], maxGrants: 10, revokedMarks: [], daemon: { pid: 42, startTicks: 7 }, established: [], guard: { port: 62201, mode: 'udp', perSourcePerSecond: 50, perSourceBurst: 100, tokens: [{ token: 0x12345678, ttlMs: 74_200 }, { token: 0xdeadbeef, ttlMs: 1 }] } } as const;
    const script = setupScript('sesame', setup, { staleOwners: [], legacySets: false, alreadyOwner: true });
    const guard = script.split('\n').filter((l) => l.includes('udp dport 62201'));
    assert.deepEqual(guard, [
      'add rule inet sesame input udp dport 62201 @th,64,32 0x73657301 limit rate 10/second burst 10 packets accept',
      'add rule inet sesame input udp dport 62201 udp length != 184-480 drop',
      'add rule inet sesame input udp dport 62201 @th,96,32 != @tokens drop',
      'add rule inet sesame input udp dport 62201 update @knockers4 { ip saddr limit rate over 50/second burst 100 packets } drop',
      'add rule inet sesame input udp dport 62201 update @knockers6 { ip6 saddr and ffff:ffff:ffff:ffff:: limit rate over 50/second burst 100 packets } drop',
      'add rule inet sesame input udp dport 62201 accept',
    ]);
    assert.match(script, /^add set inet sesame tokens \{ typeof @th,96,32; flags timeout; \}$/m);
    assert.match(script, /^flush set inet sesame tokens\nadd element inet sesame tokens \{ 0x12345678 timeout 75s, 0xdeadbeef timeout 1s \}$/m);
    assert.equal(tokensCommand('t', []), 'flush set inet t tokens');
    assert.throws(() => tokensCommand('t', [{ token: 2 ** 32, ttlMs: 1000 }]), /32-bit/);
  });

  test('the forward path: a prerouting chain before DNAT (-150) over the published ports, with the input chain\'s grants, marks and cuts', () => {
    const setup = { protectedPorts: [], forwardPorts: [{ proto: 'tcp', port: 8080 }, { proto: 'tcp', port: 8080 }, { proto: 'udp', port: 53 }], maxGrants: 100, revokedMarks: [], daemon: { pid: 42, startTicks: 7 }, established: [] } as const;
    const lines = setupScript('sesame', setup, { staleOwners: [], legacySets: false, alreadyOwner: true }).split('\n');
    const chain = lines.filter((l) => l.startsWith('add rule inet sesame prerouting ')).map((l) => l.slice('add rule inet sesame prerouting '.length));
    assert.ok(lines.includes('add chain inet sesame prerouting { type filter hook prerouting priority -150; policy accept; }'));
    assert.ok(lines.includes('add element inet sesame published { tcp . 8080, udp . 53 }'));
    assert.deepEqual(chain.slice(0, 6), ['iif "lo" accept', 'ct mark @revoked meta l4proto . th dport @published drop', 'ct id @cut drop', 'ct state established,related accept',
      'meta l4proto . th dport != @published accept', 'fib daddr type != local accept'], 'revoked and cut before the established accept; only published ports of this host go further');
    assert.ok(chain.includes('ct state new ct mark set ip saddr . meta l4proto . th dport map @allow4') && chain.includes('ip6 saddr . meta l4proto . th dport @allow6 accept'), 'the same grant maps as input');
    assert.equal(chain.at(-1), 'drop');
    assert.equal(lines.filter((l) => l.startsWith('add rule inet sesame input ')).some((l) => l.includes('published')), false, 'the input chain is untouched');
  });
});

const skip = skipReason();
/** Our own namespace names: createTopology deletes a pair of the same name first, which would kill a concurrent run's driver. */
const TAG = `nft${process.pid.toString(36)}`;

/** A driver call that gets no answer in this time fails (the driver's own nft timeout is 5 s); nothing waits forever. */
const CALL_MS = 60_000;

/** The backend, running in the server namespace behind a JSON-line pipe (see tools/nft-driver.ts). If the driver dies, every call in flight and every later call rejects with why. */
function startDriver(ns: string): { call(req: DriverRequest): Promise<unknown>; stop(): Promise<void>; readonly pid: number } {
  const child = spawnIn(ns, [process.execPath, new URL('../tools/nft-driver.js', import.meta.url).pathname]);
  const pending = new Map<number, { answer(r: DriverResponse): void; fail(e: Error): void }>();
  let nextId = 1;
  let stderr = '';
  let dead: Error | undefined;
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-4_000); });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const r = JSON.parse(line) as DriverResponse;
    pending.get(r.id)?.answer(r);
  });
  // 'close' comes after the driver's last stdout line has been read, so no answer it sent is lost.
  child.once('close', (code, signal) => {
    dead = new Error(`the nft driver exited (${signal ?? `code ${code}`})${stderr.trim() === '' ? '' : `: ${stderr.trim()}`}`);
    for (const p of pending.values()) p.fail(dead);
  });
  return {
    // `ip netns exec` execs the driver, so the child's pid is the driver's own.
    pid: child.pid ?? 0,
    call: (req) => new Promise((resolve, reject) => {
      if (dead !== undefined) return reject(dead);
      const id = nextId++;
      const done = (): void => {
        clearTimeout(timer);
        pending.delete(id);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`the nft driver did not answer ${req.op} within ${CALL_MS / 1000} s`));
      }, CALL_MS);
      pending.set(id, {
        answer: (r) => {
          done();
          if (r.ok) resolve(r.value);
          else reject(new Error(r.error));
        },
        fail: (e) => {
          done();
          reject(e);
        },
      });
      child.stdin.write(`${JSON.stringify({ id, req })}\n`);
    }),
    // The driver closes the backend and exits at end of input; the kill is only for a driver that hangs.
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => resolve(clearTimeout(timer)));
      child.stdin.end();
    }),
  };
}

/** Polls check() until it holds; fails after timeoutMs. For what the kernel does on its own clock (timeouts). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  for (const deadline = performance.now() + timeoutMs; !(await check()); await sleep(100)) {
    if (performance.now() > deadline) assert.fail(`${what}: not within ${timeoutMs / 1000} s`);
  }
}

describe('nftables in a network namespace', { skip }, () => {
  let topo: Topology;
  let driver: ReturnType<typeof startDriver>;
  let listeners: { stop(): Promise<void> }[] = [];
  let foreignBefore: unknown;
  let hostBefore: string;

  const nftIn = async (...argv: string[]): Promise<string> => {
    const r = await execIn(topo.server.ns, ['nft', ...argv]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  /** The server namespace's ruleset without sesame's table: what sesame must never change. */
  const foreignRuleset = async (): Promise<unknown> => {
    const doc = JSON.parse(await nftIn('-j', 'list', 'ruleset')) as { nftables: Record<string, { family?: string; name?: string; table?: string }>[] };
    return doc.nftables.filter((o) => Object.entries(o).every(([kind, v]) => kind !== 'metainfo' && !(v.family === 'inet' && (kind === 'table' ? v.name : v.table) === 'sesame')));
  };
  const list = async (): Promise<WireEntry[]> => (await driver.call({ op: 'list' })) as WireEntry[];
  const entryFor = async (address: string, port = PROTECTED): Promise<WireEntry | undefined> => (await list()).find((e) => e.address === address && e.port === port && e.proto === 'tcp');
  const g = (address: string, ttlSeconds: number, port = PROTECTED): WireGrant => ({ address, proto: 'tcp', port, ttlSeconds });
  const t = (address: string, port = PROTECTED): WireTarget => ({ address, proto: 'tcp', port });
  const connects = (host: string, from?: string): Promise<boolean> => tcpConnect(topo.client.ns, host, PROTECTED, from === undefined ? CONNECT_MS : NO_CONNECT_MS, from);
  const refused = async (host: string, from?: string): Promise<boolean> => !(await tcpConnect(topo.client.ns, host, PROTECTED, NO_CONNECT_MS, from));

  before(async () => {
    hostBefore = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });
    topo = await createTopology(TAG);
    // Someone else's tables in the same namespace: they must come out untouched.
    const other = 'table inet other {\n set s { type ipv4_addr; elements = { 10.1.1.1 }; }\n chain c { type filter hook input priority 0; policy accept; tcp dport 9999 accept; }\n}\n'
      + 'table ip legacy {\n chain c { type filter hook input priority 5; }\n}\n';
    const made = await execIn(topo.server.ns, ['nft', '-f', '-'], { input: other });
    assert.equal(made.code, 0, made.stderr);
    foreignBefore = await foreignRuleset();
    for (const host of ['0.0.0.0', '::']) {
      for (const port of [PROTECTED, OPEN]) listeners.push(await startTcpListener(topo.server.ns, host, port));
    }
    driver = startDriver(topo.server.ns);
  });

  after(async () => {
    await driver?.stop();
    for (const l of listeners) await l.stop();
    await topo?.destroy();
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
    assert.ok(!left.includes(`sesame-${TAG}-srv`) && !left.includes(`sesame-${TAG}-cli`), 'the namespaces are gone');
    assert.equal(execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }), hostBefore, 'the host ruleset changed');
  });

  test('setup creates the table, its maps and sets and the input chain', async () => {
    await driver.call({ op: 'setup', ports: [{ proto: 'tcp', port: PROTECTED }, { proto: 'udp', port: 5353 }] });
    const lines = (await nftIn('list', 'table', 'inet', 'sesame')).split('\n').map((l) => l.trim());
    for (const expected of [
      'set protected {', 'type inet_proto . inet_service', 'map allow4 {', 'type ipv4_addr . inet_proto . inet_service : mark',
      'map allow6 {', 'type ipv6_addr . inet_proto . inet_service : mark', 'flags timeout', 'set revoked {', 'set owner {',
      'chain input {', 'type filter hook input priority filter - 10; policy accept;', 'iif "lo" accept',
      'ct mark @revoked meta l4proto . th dport @protected drop', 'ct id @cut drop', 'ct state established,related accept',
      'ct state new ct mark set ip saddr . meta l4proto . th dport map @allow4',
      'ip saddr . meta l4proto . th dport @allow4 accept', 'ip6 saddr . meta l4proto . th dport @allow6 accept', 'meta l4proto . th dport @protected drop',
    ]) assert.ok(lines.includes(expected), `missing "${expected}"`);
    assert.ok(lines.indexOf('ct mark @revoked meta l4proto . th dport @protected drop') < lines.indexOf('ct state established,related accept'), 'revoked connections stop before the established accept');
    assert.match(await nftIn('list', 'set', 'inet', 'sesame', 'owner'), new RegExp(`elements = \\{ 0x${driver.pid.toString(16).padStart(8, '0')} \\. `), 'the driver process holds the claim');
    assert.match(await nftIn('list', 'set', 'inet', 'sesame', 'protected'), /elements = \{ tcp \. 2222,\s+udp \. 5353 \}/);
  });

  test('a protected port refuses new connections until a grant, and only from the granted source', async () => {
    const { server, client } = topo;
    assert.equal(await tcpConnect(client.ns, server.v4, OPEN, CONNECT_MS), true, 'control: an unprotected port connects');
    assert.equal(await refused(server.v4), true, 'protected before the grant');
    await driver.call({ op: 'grant', grants: [g(client.v4, 30)] });
    assert.equal(await connects(server.v4), true, 'granted source connects');
    assert.equal(await refused(server.v4, client.v4b), true, 'another source stays out');
    await driver.call({ op: 'close', targets: [t(client.v4)] });
  });

  test('IPv6 grants work the same way', async () => {
    const { server, client } = topo;
    assert.equal(await tcpConnect(client.ns, server.v6, OPEN, CONNECT_MS), true, 'control: an unprotected port connects');
    assert.equal(await refused(server.v6), true, 'protected before the grant');
    await driver.call({ op: 'grant', grants: [g(client.v6, 30)] });
    assert.equal((await entryFor(client.v6))?.proto, 'tcp');
    assert.equal(await connects(server.v6), true);
    assert.equal(await refused(server.v6, client.v6b), true);
    await driver.call({ op: 'close', targets: [t(client.v6)] });
  });

  test('a grant expires in the kernel: new connections fail, an established one survives', async () => {
    const { server, client } = topo;
    // Opened long, then re-granted short once the connection is up: how long the connection takes to start cannot eat into the grant.
    await driver.call({ op: 'grant', grants: [g(client.v4, 60)] });
    const held = await openHeldConnection(client.ns, server.v4, PROTECTED);
    try {
      assert.equal(await held.isAlive(), true);
      await driver.call({ op: 'grant', grants: [g(client.v4, 1)] });
      await until(async () => (await entryFor(client.v4)) === undefined, 'the element expires', 20_000);
      assert.equal(await refused(server.v4), true, 'no new connection after expiry');
      assert.equal(await held.isAlive(), true, 'the established connection survives');
    } finally {
      await held.close();
    }
  });

  test('slot tokens are replaced in one transaction and expire on their own: a gate whose daemon died closes by itself', async () => {
    const tokens = async (): Promise<string> => (await execIn(topo.server.ns, ['nft', 'list', 'set', 'inet', 'sesame', 'tokens'])).stdout;
    await driver.call({ op: 'tokens', tokens: [{ token: 0x12345678, ttlMs: 60_000 }, { token: 0x7badf00d, ttlMs: 1_000 }] });
    assert.match(await tokens(), /0x12345678 timeout 1m/);
    await until(async () => !(await tokens()).includes('0x7badf00d'), 'the short-lived token expires without any daemon action', 20_000);
    await driver.call({ op: 'tokens', tokens: [{ token: 0x7badf00d, ttlMs: 30_000 }] });
    const now = await tokens();
    assert.ok(now.includes('0x7badf00d') && !now.includes('0x12345678'), 'a refresh replaces the whole set');
  });

  test('a second grant before expiry replaces the timeout (longer or shorter)', async () => {
    const { server, client } = topo;
    await driver.call({ op: 'grant', grants: [g(client.v4, 2)] });
    assert.ok(((await entryFor(client.v4))?.expiresSeconds ?? 99) <= 2);
    await driver.call({ op: 'grant', grants: [g(client.v4, 60)] });
    assert.ok(((await entryFor(client.v4))?.expiresSeconds ?? 0) > 30, 'extended');
    await sleep(2_500);
    assert.equal(await connects(server.v4), true, 'still open after the first timeout');
    await driver.call({ op: 'grant', grants: [g(client.v4, 3)] });
    assert.ok(((await entryFor(client.v4))?.expiresSeconds ?? 99) <= 3, 'shortened');
    await driver.call({ op: 'close', targets: [t(client.v4)] });
  });

  test('revoke closes at once, is precise, and ignores targets that are not open', async () => {
    const { server, client } = topo;
    await driver.call({ op: 'grant', grants: [g(client.v4, 60), g(client.v6, 60)] });
    assert.equal(await connects(server.v4), true);
    await driver.call({ op: 'close', targets: [t(client.v4), t(client.v4b), { address: client.v6, proto: 'udp', port: 1 }] });
    assert.equal(await entryFor(client.v4), undefined);
    assert.equal(await refused(server.v4), true, 'closed at once');
    assert.ok((await entryFor(client.v6)) !== undefined, 'other grants stay');
    await driver.call({ op: 'close', targets: [t(client.v4), t(client.v6)] });
    assert.deepEqual(await list(), []);
  });

  test('concurrent grants are all applied', async () => {
    const grants = Array.from({ length: 40 }, (_, i) => g(`10.251.0.${i + 1}`, 30));
    assert.deepEqual(await driver.call({ op: 'grantConcurrently', grants }), grants.map(() => 'ok'));
    const listed = await list();
    for (const x of grants) assert.ok(listed.some((e) => e.address === x.address && e.expiresSeconds > 20), x.address);
    await driver.call({ op: 'close', targets: grants });
    assert.deepEqual(await list(), []);
  });

  test('full grant maps refuse alone, even when batched with others, as grant book full', async () => {
    await driver.call({ op: 'setup', table: 'capped', ports: [{ proto: 'tcp', port: PROTECTED }], maxGrants: 3 });
    const grants = Array.from({ length: 5 }, (_, i) => g(`10.252.0.${i + 1}`, 30));
    const results = (await driver.call({ op: 'grantConcurrently', table: 'capped', grants })) as string[];
    assert.deepEqual(results.slice(0, 3), ['ok', 'ok', 'ok']);
    for (const r of results.slice(3)) assert.match(r, /^rejected: the grant maps are full \(limits\.maxGrants\)/);
    assert.equal((await driver.call({ op: 'list', table: 'capped' }) as WireEntry[]).length, 3);
    await driver.call({ op: 'cleanup', table: 'capped' });
  });

  test('a table from before owners (plain allow sets) is migrated by setup; its grants are closed', async () => {
    const made = await execIn(topo.server.ns, ['nft', 'add table inet old; add set inet old allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }; add set inet old allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }; add chain inet old input { type filter hook input priority -10; }; add rule inet old input ip saddr . meta l4proto . th dport @allow4 accept; add element inet old allow4 { 10.9.9.9 . tcp . 22 timeout 60s }']);
    assert.equal(made.code, 0, made.stderr);
    await driver.call({ op: 'setup', table: 'old', ports: [{ proto: 'tcp', port: PROTECTED }] });
    assert.match(await nftIn('list', 'map', 'inet', 'old', 'allow4'), /type ipv4_addr \. inet_proto \. inet_service : mark/);
    assert.deepEqual(await driver.call({ op: 'list', table: 'old' }), []);
    await driver.call({ op: 'cleanup', table: 'old' });
  });

  test('a table another running process has claimed is refused and left as it was', async () => {
    await driver.call({ op: 'setup', table: 'claimed', ports: [{ proto: 'tcp', port: PROTECTED }], asPid: 1 });
    const before = await nftIn('list', 'table', 'inet', 'claimed');
    await assert.rejects(driver.call({ op: 'setup', table: 'claimed', ports: [{ proto: 'tcp', port: 9 }] }), /inet claimed is managed by another sesame daemon, pid 1 /);
    assert.equal(await nftIn('list', 'table', 'inet', 'claimed'), before, 'not touched');
    await driver.call({ op: 'cleanup', table: 'claimed' });
  });

  test('a claim left by a process that is gone is taken over', async () => {
    const dead = 4_000_000; // above pid_max's default: no such process
    const made = await execIn(topo.server.ns, ['nft', `add table inet stale; add set inet stale owner { type mark . mark; }; add element inet stale owner { ${dead} . 1 }`]);
    assert.equal(made.code, 0, made.stderr);
    await driver.call({ op: 'setup', table: 'stale', ports: [{ proto: 'tcp', port: PROTECTED }] });
    assert.doesNotMatch(await nftIn('list', 'set', 'inet', 'stale', 'owner'), new RegExp(`0x${dead.toString(16)}`));
    await driver.call({ op: 'cleanup', table: 'stale' });
  });

  test('connections carry their grant owner\'s mark: revoked marks stop them, others and unmarked ones go on', async () => {
    const { server, client } = topo;
    const alice = { keyIdHex: 'a'.repeat(32), mark: 0x8000000a };
    const bob = { keyIdHex: 'b'.repeat(32), mark: 0x8000000b };
    await driver.call({ op: 'grant', grants: [{ ...g(client.v4, 60), ...alice }, { ...g(client.v6, 60), ...bob }] });
    const aliceConn = await openHeldConnection(client.ns, server.v4, PROTECTED);
    const bobConn = await openHeldConnection(client.ns, server.v6, PROTECTED);
    const open = await openHeldConnection(client.ns, server.v4, OPEN); // an unprotected port: never marked
    try {
      assert.match(await nftIn('list', 'set', 'inet', 'sesame', 'admitted4'), new RegExp(`${client.v4.replaceAll('.', '\\.')} \\. 0x8000000a`), 'admitted and recorded with its mark');
      await driver.call({ op: 'revokedMarks', marks: [alice.mark] });
      assert.equal(await aliceConn.isAlive(), false, 'the revoked owner\'s connection stops passing traffic');
      assert.equal(await bobConn.isAlive(), true, 'another owner\'s connection goes on');
      assert.equal(await open.isAlive(), true, 'an unprotected connection goes on');
      await driver.call({ op: 'revokedMarks', marks: [] });
      assert.equal(await aliceConn.isAlive(), true, 'a reinstated mark passes again');
      assert.ok(Number(await driver.call({ op: 'cut', source: client.v6 })) >= 1, 'admitted connections from that source are cut (earlier tests\' ones too)');
      assert.equal(await bobConn.isAlive(), false, 'a cut connection stops passing traffic');
      assert.equal(await aliceConn.isAlive(), true, 'a cut is precise');
    } finally {
      for (const c of [aliceConn, bobConn, open]) await c.close();
      await driver.call({ op: 'close', targets: [{ ...t(client.v4), mark: alice.mark }, { ...t(client.v6), mark: bob.mark }] });
    }
  });

  test('a grant for a target another key holds replaces its owner', async () => {
    const { client } = topo;
    await driver.call({ op: 'grant', grants: [{ ...g(client.v4, 60), keyIdHex: 'a'.repeat(32), mark: 0x8000000a }] });
    await driver.call({ op: 'grant', grants: [{ ...g(client.v4, 30), keyIdHex: 'b'.repeat(32), mark: 0x8000000b }] });
    const e = await entryFor(client.v4);
    assert.equal(e?.keyIdHex, 'b'.repeat(32));
    assert.equal(e?.mark, 0x8000000b);
    assert.ok((e?.expiresSeconds ?? 99) <= 30);
    await driver.call({ op: 'close', targets: [{ ...t(client.v4), mark: 0x8000000a }] });
    assert.equal((await entryFor(client.v4))?.keyIdHex, 'b'.repeat(32), 'closing the old owner\'s grant leaves the new owner\'s');
    await driver.call({ op: 'close', targets: [{ ...t(client.v4), mark: 0x8000000b }] });
    assert.equal(await entryFor(client.v4), undefined);
  });

  test('setup again keeps live grants and replaces the protected ports', async () => {
    const { server, client } = topo;
    const chainBefore = await nftIn('list', 'chain', 'inet', 'sesame', 'input');
    await driver.call({ op: 'grant', grants: [g(client.v4, 60)] });
    await driver.call({ op: 'setup', ports: [{ proto: 'tcp', port: PROTECTED }, { proto: 'tcp', port: 2224 }] });
    assert.ok(((await entryFor(client.v4))?.expiresSeconds ?? 0) > 30, 'grant kept with its timeout');
    assert.equal(await connects(server.v4), true);
    assert.equal(await refused(server.v4, client.v4b), true);
    assert.match(await nftIn('list', 'set', 'inet', 'sesame', 'protected'), /elements = \{ tcp \. 2222,\s+tcp \. 2224 \}/);
    assert.equal(await nftIn('list', 'chain', 'inet', 'sesame', 'input'), chainBefore, 'rules replaced, not duplicated');
    await driver.call({ op: 'close', targets: [t(client.v4)] });
  });

  test('if nft dies, the request in flight fails and the next one restarts it', async () => {
    const r = (await driver.call({ op: 'killNftThenGrant', grant: g(topo.client.v4, 30) })) as { killed: number; first: string; second: string };
    assert.ok(r.killed >= 1, 'an nft process was running');
    assert.match(r.first, /^rejected: nft failed/);
    assert.equal(r.second, 'ok');
    assert.equal(await connects(topo.server.v4), true);
    await driver.call({ op: 'close', targets: [t(topo.client.v4)] });
  });

  test("nft's refusal reaches the caller", async () => {
    await assert.rejects(driver.call({ op: 'grant', table: 'absent', grants: [g(topo.client.v4, 30)] }), /No such file or directory/);
  });

  test('grant latency (printed, not asserted)', async () => {
    const r = (await driver.call({ op: 'bench', count: 200 })) as { medianMs: number; p90Ms: number; maxMs: number };
    console.log(`grant() over 200 sequential grants: median ${r.medianMs.toFixed(3)} ms, p90 ${r.p90Ms.toFixed(3)} ms, max ${r.maxMs.toFixed(3)} ms`);
  });

  test('cleanup removes the table and its grants, is idempotent, and leaves every other table as it was', async () => {
    await driver.call({ op: 'grant', grants: [g(topo.client.v4, 60)] });
    await driver.call({ op: 'cleanup' });
    assert.doesNotMatch(await nftIn('list', 'tables'), /inet sesame\b/);
    assert.equal(await connects(topo.server.v4, topo.client.v4b), true, 'nothing is protected any more');
    await driver.call({ op: 'cleanup' });
    assert.deepEqual(await foreignRuleset(), foreignBefore);
  });
});
