// Client start-up benchmark: `sesame knock ... --print-packet` (builds a knock, sends nothing) against a bare `node -e 0`, run interleaved, with each kind of identity (sesame key file, OpenSSH key file, a key in a real ssh-agent) and with a profile config. Prints figures; asserts nothing.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI } from '../helpers/daemon.ts';
import { startAgent } from '../helpers/ssh-agent.ts';
import { percentile } from './measure.ts';

const RUNS = Math.max(20, Number(process.env['STARTUP_RUNS'] ?? '30'));
const run = promisify(execFile);

export interface StartupRow {
  readonly label: string;
  readonly medianMs: number;
  readonly p95Ms: number;
  readonly ratio: number;
  readonly cpuMedianMs: number;
  readonly cpuRatio: number;
}

/** CPU seconds of this process's reaped children (cutime + cstime in /proc/self/stat, clock ticks of 10 ms). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10;
}

/** Wall time and CPU time (user + system, 10 ms resolution) of one run; CPU time is what a loaded machine distorts least. */
async function timeOnce(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ wall: number; cpu: number }> {
  const c0 = childrenCpuMs();
  const t0 = performance.now();
  await run(argv[0] ?? '', argv.slice(1), { env });
  return { wall: performance.now() - t0, cpu: childrenCpuMs() - c0 };
}

/** Every variant once per round, in turn, so load on the machine falls on all of them alike. */
export async function measureStartup(node: string, runs = RUNS): Promise<StartupRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-bench-startup-'));
  const agent = await startAgent();
  try {
    const env = { PATH: process.env['PATH'] ?? '', XDG_CONFIG_HOME: join(dir, 'xdg'), HOME: dir, SSH_AUTH_SOCK: agent.socket };
    const sesame = (...args: string[]): string[] => [node, CLI, ...args];
    await run(node, [CLI, 'keygen', '--server', '-f', join(dir, 'server.key')], { env });
    await run(node, [CLI, 'keygen', '-f', join(dir, 'openssh'), '-N', ''], { env });
    await run(node, [CLI, 'keygen', '-f', join(dir, 'inagent'), '-N', ''], { env });
    if ((await agent.add(join(dir, 'inagent'))).code !== 0) throw new Error('ssh-add failed');
    rmSync(join(dir, 'inagent'));
    // A key in the format of earlier versions: one line, the seed.
    const { stdout } = await run(node, ['-e', `process.stdout.write(require('node:crypto').randomBytes(32).toString('base64'))`]);
    writeFileSync(join(dir, 'legacy'), `sesame-ed25519-secret ${stdout} bench\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'client.json'), JSON.stringify({ profiles: { prod: { host: 'prod.invalid', serverKey: join(dir, 'server.pub'), identity: join(dir, 'openssh'), ports: ['tcp/22'] } } }));
    const knock = (identity: string): string[] => sesame('knock', 'example.invalid', '-i', identity, '--server-key', join(dir, 'server.pub'), '--print-packet');
    const variants: [string, string[]][] = [
      ['node -e 0', [node, '-e', '0']],
      ['sesame --version', sesame('--version')],
      ['knock --print-packet, sesame key file', knock(join(dir, 'legacy'))],
      ['knock --print-packet, OpenSSH key file', knock(join(dir, 'openssh'))],
      ['knock --print-packet, key in ssh-agent (-i .pub)', knock(join(dir, 'inagent.pub'))],
      ['knock prod --print-packet (profile config)', sesame('knock', 'prod', '--print-packet', '--config', join(dir, 'client.json'))],
    ];
    // Warm-up: page cache, and the compile cache where Node has one.
    for (const [, argv] of variants) for (let i = 0; i < 2; i++) await timeOnce(argv, env);
    const wall = variants.map((): number[] => []);
    const cpu = variants.map((): number[] => []);
    for (let r = 0; r < runs; r++) {
      for (const [i, [, argv]] of variants.entries()) {
        const t = await timeOnce(argv, env);
        wall[i]?.push(t.wall);
        cpu[i]?.push(t.cpu);
      }
    }
    const median = (xs: readonly number[] | undefined): number => percentile([...(xs ?? [])].sort((a, b) => a - b), 50);
    const base = median(wall[0]);
    const cpuBase = median(cpu[0]);
    return variants.map(([label], i) => ({
      label,
      medianMs: median(wall[i]),
      p95Ms: percentile([...(wall[i] ?? [])].sort((a, b) => a - b), 95),
      ratio: median(wall[i]) / base,
      cpuMedianMs: median(cpu[i]),
      cpuRatio: median(cpu[i]) / cpuBase,
    }));
  } finally {
    agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function startupTable(node: string, version: string, rows: readonly StartupRow[]): string {
  const lines = rows.map((r) => `${r.label.padEnd(50)} ${r.medianMs.toFixed(0).padStart(6)} ${r.p95Ms.toFixed(0).padStart(6)} ${`${r.ratio.toFixed(2)}x`.padStart(7)} ${r.cpuMedianMs.toFixed(0).padStart(7)} ${`${r.cpuRatio.toFixed(2)}x`.padStart(7)}`);
  const head = `${''.padEnd(50)} ${'wall'.padStart(6)} ${'p95'.padStart(6)} ${'ratio'.padStart(7)} ${'CPU ms'.padStart(7)} ${'ratio'.padStart(7)}`;
  return [`client start-up, ${version} (${node}), ${RUNS} interleaved runs each: medians of the whole process's wall and CPU time, against node -e 0`, head, ...lines].join('\n');
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  // Node 20 here; NODE24=/path/to/node adds a run on that binary (module.enableCompileCache exists from Node 22.1).
  const nodes = [process.execPath, ...(process.env['NODE24'] === undefined ? [] : [process.env['NODE24']])];
  for (const node of nodes) {
    const { stdout: version } = await run(node, ['--version']);
    console.log(startupTable(node, version.trim(), await measureStartup(node)));
  }
}
