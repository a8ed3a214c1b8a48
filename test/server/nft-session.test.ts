// The `nft -i` session (nft-session.ts) against fake nft programs that speak its ack protocol, then misbehave (die, never answer, ignore end of input); and once against the real nft inside a throwaway sesame-* namespace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NftInteractive } from '../../src/server/nft-session.ts';
import { removeNamespace } from '../../src/harness/netns.ts';
import { skipReason } from '../../src/harness/topology.ts';

/** No test here waits forever: a hang is a failure. */
const TEST_MS = 30_000;

/**
 * A fake nft: answers like `nft -i` (nothing on success; on stderr an "Error:" line, the echoed command and a caret
 * line for a refusal, and the same for the ack marker, whose syntax is invalid). A command word makes it misbehave:
 * die (exit 3 at once), die-later (exit 3 after 200 ms, unanswered), hang (never answer again), keep-alive (ignore
 * end of input). Each process appends its pid to ./pids once it reads its input, and "pid command" to ./lines, next to itself.
 */
const FAKE_NFT = `#!${process.execPath}
const { appendFileSync } = require('node:fs');
const { join } = require('node:path');
const here = (name) => join(__dirname, name);
let hung = false;
let keepAlive = false;
const answer = (command, what) => process.stderr.write('Error: ' + what + '\\n' + command + '\\n' + '^'.repeat(command.length) + '\\n');
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (hung) return;
  for (const command of line.split('; ')) {
    appendFileSync(here('lines'), process.pid + ' ' + command + '\\n');
    if (command.startsWith('sesame-ack-')) answer(command, 'syntax error, unexpected newline, expecting string');
    else if (command === 'refuse') answer(command, 'Could not process rule: No such file or directory');
    else if (command === 'die') process.exit(3);
    else if (command === 'die-later') { hung = true; setTimeout(() => process.exit(3), 200); return; }
    else if (command === 'hang') { hung = true; return; }
    else if (command === 'keep-alive') { keepAlive = true; setInterval(() => {}, 1000); }
  }
});
rl.on('close', () => { if (!keepAlive) process.exit(0); });
appendFileSync(here('pids'), process.pid + '\\n');
`;

const dirs: string[] = [];
/** Every fake nft process started here: killed at the end even if the session under test lost track of one. */
const fakes: { path: string; pids(): number[] }[] = [];
after(() => {
  for (const fake of fakes) for (const pid of fake.pids()) if (runs(pid, fake.path)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh fake nft in its own directory, with readers for what it recorded. */
function fakeNft(): { path: string; pids(): number[]; commands(): string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-fake-nft-'));
  dirs.push(dir);
  const path = join(dir, 'nft');
  writeFileSync(path, FAKE_NFT);
  chmodSync(path, 0o755);
  const read = (name: string): string[] => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8').split('\n').filter((l) => l !== '') : []);
  const fake = { path, pids: () => read('pids').map(Number), commands: () => read('lines') };
  fakes.push(fake);
  return fake;
}

/**
 * Starts the session's helper and waits (bounded) until it reads its input, so that a short timeoutMs measures the
 * answer alone: starting node takes longer than a short timeout on a loaded machine.
 */
async function warmed(nft: NftInteractive, fake: { pids(): number[] }): Promise<void> {
  const before = fake.pids().length;
  nft.warm();
  for (const deadline = performance.now() + 20_000; fake.pids().length === before; await sleep(10)) {
    assert.ok(performance.now() < deadline, 'the fake nft did not start within 20 s');
  }
}

/** Whether pid is still this fake (a pid can be reused once the fake is gone). */
function runs(pid: number, path: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(path);
  } catch {
    return false;
  }
}

/** Polls (bounded) until the fake's process is gone (a zombie has no command line: killed counts as gone). */
async function gone(fake: { path: string }, pid: number): Promise<boolean> {
  for (const deadline = performance.now() + 10_000; performance.now() < deadline; await sleep(20)) if (!runs(pid, fake.path)) return true;
  return false;
}

test('the fake speaks the protocol: a request resolves on its ack, a refusal rejects with nft\'s error', { timeout: TEST_MS }, async () => {
  const fake = fakeNft();
  const nft = new NftInteractive(fake.path, 10_000);
  try {
    await nft.run('add element ok');
    await assert.rejects(nft.run('refuse'), /^Error: nft refused "refuse": Error: Could not process rule: No such file or directory$/);
    await nft.run('add element ok again');
    assert.equal(fake.pids().length, 1, 'one process served all three');
  } finally {
    await nft.close();
  }
});

test('the helper dying mid-request rejects that request clearly; the next request goes to a fresh process', { timeout: TEST_MS }, async () => {
  const fake = fakeNft();
  const nft = new NftInteractive(fake.path, 10_000);
  try {
    await nft.run('first');
    const inFlight = nft.run('die-later'); // sent at once: the helper is idle
    const queued = nft.run('after'); // waits behind it, in the next batch
    await assert.rejects(inFlight, /^Error: nft failed \(exit code 3\); the change may not have been applied$/);
    await queued;
    await assert.rejects(nft.run('die'), /nft failed \(exit code 3\)/, 'a helper that dies at once fails the same way');
    await nft.run('last');
    const [p1, p2, p3] = fake.pids();
    assert.equal(fake.pids().length, 3, 'one fresh process per death');
    assert.ok(fake.commands().includes(`${p1} die-later`));
    assert.ok(fake.commands().includes(`${p2} after`), 'the queued request went to the second process');
    assert.ok(fake.commands().includes(`${p3} last`));
  } finally {
    await nft.close();
  }
});

test('a helper that never acknowledges: run() rejects after timeoutMs, the helper is killed, the next request gets a fresh one', { timeout: TEST_MS }, async () => {
  const fake = fakeNft();
  const timeoutMs = 1_000;
  const nft = new NftInteractive(fake.path, timeoutMs);
  try {
    await warmed(nft, fake);
    const started = performance.now();
    await assert.rejects(nft.run('hang'), /^Error: nft failed \(no acknowledgement within 1000 ms\); the change may not have been applied$/);
    assert.ok(performance.now() - started >= timeoutMs - 5, 'not before the timeout');
    const [hung] = fake.pids();
    assert.ok(hung !== undefined);
    assert.equal(await gone(fake, hung), true, 'the silent helper was killed');
    await warmed(nft, fake);
    await nft.run('next');
    assert.equal(fake.pids().length, 2);
    assert.ok(fake.commands().includes(`${fake.pids()[1]} next`));
  } finally {
    await nft.close();
  }
});

test('close() waits for the request in flight, ends the helper, and later requests reject', { timeout: TEST_MS }, async () => {
  const fake = fakeNft();
  const nft = new NftInteractive(fake.path, 10_000);
  const inFlight = nft.run('before close');
  await nft.close();
  await inFlight; // resolved, not dropped, by the close
  const [pid] = fake.pids();
  assert.ok(pid !== undefined);
  assert.equal(await gone(fake, pid), true, 'the helper exited at end of input');
  await assert.rejects(nft.run('after close'), /nftables firewall is closed/);
  assert.ok(!fake.commands().some((c) => c.endsWith('after close')));
  await nft.close(); // twice is fine
  await new NftInteractive(fake.path, 10_000).close(); // never started: nothing to wait for
});

test('close() kills a helper that ignores end of input, after timeoutMs', { timeout: TEST_MS }, async () => {
  const fake = fakeNft();
  const nft = new NftInteractive(fake.path, 1_000);
  await warmed(nft, fake);
  await nft.run('keep-alive');
  const [pid] = fake.pids();
  assert.ok(pid !== undefined);
  await nft.close();
  assert.equal(await gone(fake, pid), true);
});

const NS = `sesame-nftses${process.pid.toString(36)}`;

describe('the real nft, inside a throwaway namespace', { skip: skipReason() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-nft-in-ns-'));
  dirs.push(dir);
  const nftIn = (...args: string[]): string => execFileSync('ip', ['netns', 'exec', NS, 'nft', ...args], { encoding: 'utf8' });

  after(() => removeNamespace(NS));

  test('requests batch into one transaction; a refused one fails alone; the others are applied', { timeout: TEST_MS }, async () => {
    removeNamespace(NS);
    execFileSync('ip', ['netns', 'add', NS]);
    // `ip netns exec` enters the namespace and execs nft, so the session's pid is nft's own.
    const wrapper = join(dir, 'nft');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} nft "$@"\n`);
    chmodSync(wrapper, 0o755);
    const nft = new NftInteractive(wrapper, 10_000);
    try {
      await nft.run('add table inet sesame_session_test');
      await nft.run('add set inet sesame_session_test s { type ipv4_addr; }');
      const results = await Promise.allSettled([
        nft.run('add element inet sesame_session_test s { 10.0.0.1 }'),
        nft.run('add element inet sesame_session_test absent { 10.0.0.2 }'),
        nft.run('add element inet sesame_session_test s { 10.0.0.3 }'),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      const refused = results[1];
      assert.ok(refused?.status === 'rejected');
      assert.match(String(refused.reason), /nft refused "add element inet sesame_session_test absent \{ 10\.0\.0\.2 \}": Error: No such file or directory/);
      assert.match(nftIn('list', 'set', 'inet', 'sesame_session_test', 's'), /elements = \{ 10\.0\.0\.1, 10\.0\.0\.3 \}/);
    } finally {
      await nft.close();
    }
  });
});
