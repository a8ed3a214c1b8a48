// Users benchmark: per-packet cost with 1 vs 10,000 users (key lookup must not grow), and time from `sesame user revoke` returning to the grant leaving the nft set. Prints figures; asserts nothing.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAddress } from '../../src/address.ts';
import { checkKnock } from '../../src/check.ts';
import { generateServerKeys, generateUserKeys } from '../../src/keys.ts';
import { formatKeyLine, KEY_TYPE } from '../../src/keyfile.ts';
import { buildKnock, systemRandom } from '../../src/knock.ts';
import { decide } from '../../src/policy.ts';
import { loadSodium } from '../../src/sodium.ts';
import { parseUsers } from '../../src/users.ts';
import { CLI, Daemon, makeServerDir, userEntry } from '../helpers/daemon.ts';
import { createTopology, execIn, sendUdp, startTcpListener } from '../helpers/netns.ts';
import { percentile } from './measure.ts';

await loadSodium();

function perPacketMicros(userCount: number): { micros: number; loadMs: number } {
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
  const pool = Array.from({ length: 1000 }, () => buildKnock({ access: [{ proto: 'tcp', port: 22 }] }, last, server.publicKey, Date.now(), systemRandom));
  const source = parseAddress('10.0.0.2') ?? new Error('address');
  if (source instanceof Error) throw source;
  const bounds = { defaultDurationSeconds: 30, maxDurationSeconds: 300 };
  const once = (p: Uint8Array): void => {
    const r = checkKnock(p, { server, lookup: table.lookup, nowMs: Date.now(), windowMs: 30_000 });
    if (!r.ok) throw new Error(r.reason);
    const policy = table.policy(r.value.key.user);
    if (policy === undefined || !decide(r.value.payload, source, policy, bounds).ok) throw new Error('policy');
  };
  for (const p of pool.slice(0, 200)) once(p);
  const start = performance.now();
  for (let round = 0; round < 3; round++) for (const p of pool) once(p);
  return { micros: ((performance.now() - start) * 1000) / (3 * pool.length), loadMs };
}

const one = perPacketMicros(1);
const many = perPacketMicros(10_000);
console.log(`per-packet cost (check + lookup + policy): 1 user ${one.micros.toFixed(1)} µs, 10,000 users ${many.micros.toFixed(1)} µs (ratio ${(many.micros / one.micros).toFixed(3)})`);
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
  const present = async (): Promise<boolean> => (await execIn(topo.server.ns, ['nft', 'list', 'set', 'inet', 'sesame', 'allow4'])).stdout.includes(topo.client.v4);
  const untilGone: number[] = [];
  const toLog: number[] = [];
  for (let i = 0; i < 10; i++) {
    const since = daemon.events.length;
    await sendUdp(topo.client.ns, topo.server.v4, 62201, buildKnock({ access: [{ proto: 'tcp', port: 2222 }], durationSeconds: 300 }, alice, dir.serverKeys.publicKey, Date.now(), systemRandom));
    await daemon.event('grant.opened', 3000, since);
    if (!(await present())) throw new Error('grant not in the set');
    await cli('user', 'revoke', 'alice');
    const returned = Date.now();
    while (await present()) await sleep(1);
    untilGone.push(Date.now() - returned);
    const closed = await daemon.event('grant.closed', 3000, since);
    toLog.push(Date.parse(String(closed['time'])) - returned);
    await cli('user', 'add', 'alice', '--key', `${dir.dir}/alice.pub`, '--force');
    await daemon.event('users.reloaded', 3000, daemon.events.length - 1);
    await sleep(100);
  }
  const s = [...untilGone].sort((a, b) => a - b);
  const l = [...toLog].sort((a, b) => a - b);
  console.log(`revoke -> grant gone from the nft set (polled with nft list, ~5 ms per poll), over ${s.length} runs: median ${percentile(s, 50)} ms, max ${percentile(s, 100)} ms`);
  console.log(`revoke -> daemon logs grant.closed (after nft acknowledged): median ${percentile(l, 50)} ms, max ${percentile(l, 100)} ms`);
  await daemon.kill('SIGTERM');
  await listener.stop();
} finally {
  await topo.destroy();
  dir.remove();
}
