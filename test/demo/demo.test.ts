// End to end: `sesame demo` (the README's first command) runs to the end as a child process with stdout not a TTY, narrates each milestone in order, and leaves no namespace, process or temp dir behind, also when interrupted with SIGINT.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, test } from 'node:test';
import { skipReason } from '../../src/harness/topology.ts';

const skip = skipReason();
/** dist/test/demo.test.js -> dist/src/cli.js */
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** Milestones of a full run, in the order they must appear on stdout. */
const MILESTONES: readonly [string, RegExp][] = [
  ['namespaces created', /^Setup: namespaces sesame-demo-srv \(10\.77\.0\.1\) and sesame-demo-cli \(10\.77\.0\.2\).* done$/m],
  ['daemon started', /server\.started: knock port udp\/62201, table inet sesame guards tcp\/2222/],
  ['1: port closed', /^1\. Client 10\.77\.0\.2 connects to 10\.77\.0\.1:2222 \.\.\. closed/m],
  ['2: knock built', /^2\. Client: sesame knock 10\.77\.0\.1 .*--print-packet$/m],
  ['2: knock accepted', /knock\.accepted \(user alice, from 10\.77\.0\.2/],
  ['2: grant opened', /grant\.opened tcp\/2222 for 10\.77\.0\.2, 10 s/],
  ['3: port open', /^3\. .* open: "SSH-2\.0-demo service behind sesame"$/m],
  ['4: replay refused', /^4\. Client replays the very same \d+ bytes \.\.\. refused: replay/m],
  ['5: revoked', /^5\. Admin: sesame user revoke alice .* user\.revoked alice, grant\.closed tcp\/2222 for 10\.77\.0\.2$/m],
  ['5: access gone', /\.\.\. closed: access gone at once/],
  ['6: re-added', /^6\. Admin: sesame user add alice .*--force \.\.\. alice is back/m],
  ['6: knock --wait', /sesame knock 10\.77\.0\.1 .*--wait -d 3 \.\.\. open/],
  ['6: short grant', /grant\.opened tcp\/2222 for 10\.77\.0\.2, 3 s/],
  ['6: expired', /\.\.\. closed: grant expired in the kernel/],
  ['summary', /^All 6 steps done in [\d.]+ s/m],
  ['next steps', /README\.md/],
  ['cleaned up', /^Cleaned up: .*namespaces sesame-demo-srv and sesame-demo-cli deleted/m],
];

interface Outcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

const running = new Set<ChildProcess>();

/** Starts `sesame demo` with stdout piped (so not a TTY); onStdout sees the output so far after each chunk. */
function startDemo(onStdout: (soFar: string) => void = () => {}): { child: ChildProcess; done: Promise<Outcome> } {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    onStdout(stdout);
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const done = new Promise<Outcome>((resolve) => {
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
  return { child, done };
}

function lines(cmd: string, args: readonly string[]): string[] {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter((l) => l !== '');
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** What a demo run could leave behind: its namespaces, its processes (their command lines name sesame-demo-*), its temp dir. */
function leftovers(output: string): { namespaces: string[]; processes: string[]; dir: string | undefined } {
  const dir = /^ {2}DIR = (\S+)$/m.exec(output)?.[1];
  return {
    namespaces: lines('ip', ['netns', 'list']).filter((l) => l.startsWith('sesame-demo-')),
    processes: lines('pgrep', ['-af', 'sesame-demo']),
    dir: dir !== undefined && existsSync(dir) ? dir : undefined,
  };
}

describe('sesame demo', { skip, timeout: 90_000 }, () => {
  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
  });

  test('runs to the end, narrating each milestone in order, and leaves nothing behind', async () => {
    const hostTables = lines('nft', ['list', 'tables']);
    const hostLinks = lines('ip', ['-o', 'link', 'show']).map((l) => l.split(':')[1]?.trim());
    const out = await startDemo().done;
    assert.equal(out.code, 0, `exit code; stderr: ${out.stderr}\nstdout: ${out.stdout}`);
    let from = 0;
    for (const [name, pattern] of MILESTONES) {
      const m = pattern.exec(out.stdout.slice(from));
      assert.ok(m !== null, `milestone "${name}" missing after offset ${from} of:\n${out.stdout}`);
      from += m.index + m[0].length;
    }
    assert.doesNotMatch(out.stdout, /\x1b\[/, 'no terminal control sequences when stdout is not a TTY');
    assert.ok(out.ms < 60_000, `the demo took ${Math.round(out.ms)} ms, more than 60 s (README: about 10 s; the bound is a hang guard with slack for a loaded machine)`);
    assert.deepEqual(leftovers(out.stdout), { namespaces: [], processes: [], dir: undefined });
    assert.deepEqual(lines('nft', ['list', 'tables']), hostTables, "the host's own nftables tables are unchanged");
    assert.deepEqual(lines('ip', ['-o', 'link', 'show']).map((l) => l.split(':')[1]?.trim()), hostLinks, "the host's own interfaces are unchanged");
  });

  test('SIGINT mid-run (Ctrl-C) stops it and still removes everything it created', async () => {
    let daemonUp: () => void = () => {};
    const up = new Promise<void>((resolve) => {
      daemonUp = resolve;
    });
    const { child, done } = startDemo((soFar) => {
      if (/server\.started/.test(soFar)) daemonUp();
    });
    await Promise.race([up, done]);
    const during = leftovers('');
    assert.deepEqual(during.namespaces.sort(), ['sesame-demo-cli', 'sesame-demo-srv'], 'the namespaces exist while it runs');
    assert.ok(during.processes.length > 0, 'the daemon runs');
    child.kill('SIGINT');
    const out = await done;
    assert.equal(out.code, 130, `exit code; stderr: ${out.stderr}\nstdout: ${out.stdout}`);
    assert.match(out.stdout, /^SIGINT: stopping the demo and removing what it created/m);
    assert.match(out.stdout, /^Cleaned up: /m);
    assert.doesNotMatch(out.stdout, /All 6 steps done/);
    assert.deepEqual(leftovers(out.stdout), { namespaces: [], processes: [], dir: undefined });
  });
});
