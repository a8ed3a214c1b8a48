// Users benchmark: per-packet cost with 1 vs 10,000 users (key lookup must not grow), and time from `sesame user revoke` returning to the grant leaving the nft set. Prints figures; asserts nothing.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddress } from '../../src/protocol/address.ts';
import { checkKnock } from '../helpers/verdict.ts';
import { generateServerKeys, generateUserKeys } from '../../src/protocol/keys.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/protocol/keyfile.ts';
import { buildKnock, systemRandom } from '../../src/protocol/build.ts';
import { decide } from '../../src/server/policy.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { parseUsers } from '../../src/server/users.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { execIn } from '../../src/harness/netns.ts';
import { sendUdp, startTcpListener } from '../../src/harness/programs.ts';
import { createTopology } from '../../src/harness/topology.ts';
import { percentile } from './measure.ts';

await loadSodium();

interface World {
  readonly loadMs: number;
  readonly once: (p: Uint8Array) => void;
  readonly pool: readonly Uint8Array[];
}

function world(userCount: number): World {
  const server = generateServerKeys();
  const keys = Array.from({ length: userCount }, () => generateUserKeys());
  const users: Record<string, unknown> = {};
  keys.forEach((k, i) => {
    users[`user${i}`] = { keys: [{ key: formatKeyLine(KEY_TYPE.userPublic, k.publicKey, `u${i}`).trim() }], ports: ['tcp/22'] };
  });
  const t0 = performance.now();
  const table = parseUsers({ users }, 'bench-users.json');
  const loadMs = performance.now() - t0;
  const last = keys[keys.length - 1] ?? generateUserKeys(); // the last one listed: no advantage from order
  const pool = Array.from({ length: 500 }, () => buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, last, server.publicKey, Date.now(), systemRandom));
  const source = parseAddress('10.0.0.2');
  if (source === undefined) throw new Error('address');
  const bounds = { defaultDurationSeconds: 30, maxDurationSeconds: 300 };
  const once = (p: Uint8Array): void => {
    const r = checkKnock(p, { server, lookup: table.lookup, nowMs: Date.now(), windowMs: 30_000 });
    if (!r.ok) throw new Error(r.reason);
    const policy = table.policy(r.value.key.user);
    if (policy === undefined || !decide(r.value.payload, source, policy, bounds).ok) throw new Error('policy');
  };
  return { loadMs, once, pool };
}

function roundMicros(w: World): number {
  const start = performance.now();
  for (const p of w.pool) w.once(p);
  return ((performance.now() - start) * 1000) / w.pool.length;
}

const one = world(1);
const many = world(10_000);
for (const p of one.pool.slice(0, 100)) one.once(p);
for (const p of many.pool.slice(0, 100)) many.once(p);
// Interleaved rounds, so machine noise (other processes, CPU frequency) hits both sides alike.
const a: number[] = [];
const b: number[] = [];
for (let round = 0; round < 8; round++) {
  a.push(roundMicros(one));
  b.push(roundMicros(many));
}
const med = (xs: number[]): number => percentile([...xs].sort((x, y) => x - y), 50);
console.log(`per-packet cost (check + key-id lookup + policy), median of 8 interleaved rounds of 500: 1 user ${med(a).toFixed(1)} µs, 10,000 users ${med(b).toFixed(1)} µs (ratio ${(med(b) / med(a)).toFixed(3)})`);
console.log(`loading a users file of 10,000 users takes ${many.loadMs.toFixed(0)} ms (1 user: ${one.loadMs.toFixed(1)} ms)`);

const topo = await createTopology('benchusr');
const dir = makeServerDir({ protect: ['tcp/2222'] });
try {
  const alice = dir.userKey('alice');
  dir.writeUsers({ alice: userEntry(alice, { maxDurationSeconds: 300 }) });
  const listener = await startTcpListener(topo.server.ns, '0.0.0.0', 2222);
  const daemon = new Daemon(topo.server.ns, dir.configPath);
  await daemon.event('server.started', 10_000);
  const cli = (...a: string[]) => promisify(execFile)(process.execPath, [CLI, ...a, '-c', dir.configPath]);
  const present = async (): Promise<boolean> => (await execIn(topo.server.ns, ['nft', 'list', 'map', 'inet', 'sesame', 'allow4'])).stdout.includes(topo.client.v4);
  const untilGone: number[] = [];
  const toLog: number[] = [];
  const fromInvoke: number[] = [];
  let goneAtFirstPoll = 0;
  for (let i = 0; i < 10; i++) {
    const since = daemon.events.length;
    await sendUdp(topo.client.ns, topo.server.v4, 62201, buildKnock({ access: [{ proto: 'tcp', port: 2222 }], durationSeconds: 300 }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom));
    await daemon.event('grant.opened', 3000, since);
    if (!(await present())) throw new Error('grant not in the set');
    const invoked = Date.now();
    await cli('user', 'revoke', 'alice');
    const returned = Date.now();
    let polls = 0;
    while (await present()) polls++;
    untilGone.push(Date.now() - returned);
    if (polls === 0) goneAtFirstPoll++;
    const closed = await daemon.event('grant.closed', 3000, since);
    toLog.push(Date.parse(String(closed['time'])) - returned);
    fromInvoke.push(Date.parse(String(closed['time'])) - invoked);
    await cli('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--force');
    await daemon.event('users.reloaded', 3000, daemon.events.length - 1);
    await sleep(100);
  }
  const sorted = (xs: number[]): number[] => [...xs].sort((x, y) => x - y);
  console.log(`revoke, over ${untilGone.length} runs: the element was already gone from the nft set at the first check after \`sesame user revoke\` returned in ${goneAtFirstPoll}/${untilGone.length} runs; returned -> confirmed gone (one \`nft list\` poll ~5-10 ms) median ${percentile(sorted(untilGone), 50)} ms, max ${percentile(sorted(untilGone), 100)} ms`);
  console.log(`  daemon's grant.closed (after nft acknowledged the removal) relative to revoke returning: median ${percentile(sorted(toLog), 50)} ms, max ${percentile(sorted(toLog), 100)} ms (negative: before the command had exited); from the command's start: median ${percentile(sorted(fromInvoke), 50)} ms`);
  await daemon.kill('SIGTERM');
  await listener.stop();
} finally {
  await topo.destroy();
  dir.remove();
}
