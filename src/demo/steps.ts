// The demo's narrated steps: setup (namespaces, keys, config, service, daemon), then closed, knock, open, replay refused, revoked, expired. Trusts what it started (the CLI, the daemon's log via DaemonLog); touches only the sesame-demo-* namespaces and its own temp dir.
import type { ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../errors.ts';
import { DaemonLog, field, isRecord } from '../harness/daemon-log.ts';
import type { LogEvent } from '../harness/daemon-log.ts';
import { createPair, execIn, run, spawnIn } from '../harness/netns.ts';
import { probeTcp, sendUdp, startTcpListener } from '../harness/programs.ts';
import type { Narrator } from './narrator.ts';

export const PREFIX = 'sesame-demo-';
export const SERVER = { ns: `${PREFIX}srv`, dev: 'veth-srv', cidrs: ['10.77.0.1/24'], ip: '10.77.0.1' } as const;
export const CLIENT = { ns: `${PREFIX}cli`, dev: 'veth-cli', cidrs: ['10.77.0.2/24'], ip: '10.77.0.2' } as const;
export const PORT = 2222;
const KNOCK_PORT = 62201;
const GRANT = { defaultSeconds: 10, shortSeconds: 3 } as const;
const TIMING = { connectMs: 1_000, eventMs: 5_000, daemonStartMs: 10_000, expiryMarginMs: 500, settleMs: 200 } as const;
const BANNER = 'SSH-2.0-demo service behind sesame';
/** This file runs as dist/src/demo/steps.js; the real CLI is dist/src/cli.js. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

/** An operator-fixable reason the demo cannot run here (as opposed to a step that failed). */
export class Missing extends Error {}

/** State that cleanup needs, whichever way the demo ends. */
export interface Run {
  readonly say: Narrator;
  readonly started: number;
  dir: string | undefined;
  daemon: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  step: string;
  cleaned: boolean;
}

/** What the steps share once setup is done. */
interface Stage {
  readonly say: Narrator;
  readonly log: DaemonLog;
  /** Runs the real CLI on the host (file edits and --print-packet only: nothing that uses the network). */
  readonly sesame: (args: readonly string[]) => Promise<string>;
  /** A command line as shown, with the temp dir written DIR. */
  readonly show: (args: readonly string[]) => string;
  readonly env: NodeJS.ProcessEnv;
  readonly config: string;
  readonly knockArgs: readonly string[];
  readonly addAlice: readonly string[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function steps(r: Run): Promise<void> {
  const stage = await setup(r);
  r.step = 'step 1 (port closed)';
  await knockReplay(r, stage);
  await revokeExpire(r, stage);
}

async function setup(r: Run): Promise<Stage> {
  const { say } = r;
  say.line('sesame demo: the real daemon and client in two throwaway network namespaces; the host\'s own interfaces and firewall are not touched.\n');
  say.begin(`Setup: namespaces ${SERVER.ns} (${SERVER.ip}) and ${CLIENT.ns} (${CLIENT.ip}), joined by a veth pair`);
  try {
    await createPair(SERVER, CLIENT);
  } catch (err) {
    throw new Missing(`cannot create network namespaces (${errorMessage(err)}); the kernel, or the container this runs in, must allow them (in Docker: --privileged)`);
  }
  const nft = await execIn(SERVER.ns, ['nft', 'list', 'tables']);
  if (nft.code !== 0) throw new Missing(`nft does not work inside a network namespace here: ${nft.stderr.trim()} (nftables needs the nf_tables kernel module: modprobe nf_tables)`);
  say.end('done');

  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  r.dir = dir;
  const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'client') }; // the host user's client profiles stay out of it
  const show = (args: readonly string[]): string => ['sesame', ...args].map((a) => a.replace(dir, 'DIR')).join(' ');
  const sesame = async (args: readonly string[]): Promise<string> => {
    const out = await run(process.execPath, [CLI, ...args], { env });
    if (out.code !== 0) throw new Error(`${show(args)} failed (${out.code === null ? 'killed' : `exit ${out.code}`}): ${(out.stderr || out.stdout).trim()}`);
    return out.stdout;
  };
  const config = join(dir, 'config.json');
  const alice = join(dir, 'alice');
  say.line(`  DIR = ${dir}`);
  say.begin('  sesame server init DIR');
  await sesame(['server', 'init', dir, '--state-dir', join(dir, 'state'), '--user', 'root']);
  const doc: unknown = JSON.parse(readFileSync(config, 'utf8'));
  if (!isRecord(doc)) throw new Error(`${config} is not a JSON object`);
  const edited = { ...doc, listen: ['0.0.0.0'], protect: [`tcp/${PORT}`], defaultDurationSeconds: GRANT.defaultSeconds, maxDurationSeconds: GRANT.defaultSeconds };
  writeFileSync(config, `${JSON.stringify(edited, null, 2)}\n`);
  say.end(`server key pair; config.json edited to protect tcp/${PORT}, grants of at most ${GRANT.defaultSeconds} s`);
  say.begin("  sesame keygen -f DIR/alice -N ''");
  const keyId = /Key id: ([0-9a-f]+)/.exec(await sesame(['keygen', '-f', alice, '-C', 'alice@demo', '-N', '']))?.[1] ?? '?';
  say.end(`alice's key, key id ${keyId.slice(0, 16)}`);
  const addAlice = ['user', 'add', 'alice', '--key', `${alice}.pub`, '--ports', `tcp/${PORT}`, '-c', config];
  say.begin(`  ${show(addAlice)}`);
  await sesame(addAlice);
  say.end('done');

  say.begin(`  service in ${SERVER.ns} on 0.0.0.0:${PORT}`);
  await startTcpListener(SERVER.ns, '0.0.0.0', PORT, BANNER);
  say.end(`answers "${BANNER}"`);
  say.begin(`  sesame server -c DIR/config.json, in ${SERVER.ns}`);
  r.daemon = spawnIn(SERVER.ns, [process.execPath, CLI, 'server', '-c', config], env);
  const log = new DaemonLog(r.daemon);
  const up = await log.next(['server.started'], 0, TIMING.daemonStartMs);
  say.end(`server.started: knock port udp/${field(up, 'knockPort')}, table inet ${field(up, 'table')} guards ${field(up, 'protect')}`);
  say.line('');
  const knockArgs = ['knock', SERVER.ip, '-i', alice, '--server-key', join(dir, 'server.pub'), '-p', `tcp/${PORT}`];
  return { say, log, sesame, show, env, config, knockArgs, addAlice };
}

const CONNECT = `Client ${CLIENT.ip} connects to ${SERVER.ip}:${PORT}`;

/** Steps 1-4: closed, one knock, open, the same packet again. */
async function knockReplay(r: Run, s: Stage): Promise<void> {
  const { say, log } = s;
  say.begin(`1. ${CONNECT}`);
  await expectClosed('before any knock');
  say.end(`closed: no answer in ${TIMING.connectMs / 1000} s (dropped by nftables in ${SERVER.ns})`);

  r.step = 'step 2 (knock)';
  say.line(`2. Client: ${s.show([...s.knockArgs, '--print-packet'])}`);
  const hex = (await s.sesame([...s.knockArgs, '--print-packet'])).trim();
  if (!/^([0-9a-f]{2})+$/.test(hex)) throw new Error(`--print-packet printed no hex packet: ${hex.slice(0, 80)}`);
  const packet = Buffer.from(hex, 'hex');
  say.begin(`   sends those ${packet.length} bytes as one UDP datagram to ${SERVER.ip}:${KNOCK_PORT}`);
  let since = log.length;
  await sendUdp(CLIENT.ns, SERVER.ip, KNOCK_PORT, packet);
  const accepted = await expectEvent(log, ['knock.accepted', 'knock.dropped'], since, 'knock.accepted');
  const opened = await expectEvent(log, ['grant.opened', 'grant.failed'], since, 'grant.opened');
  const skewMs = Number(field(accepted, 'skewMs'));
  const age = skewMs <= 0 ? `timestamp ${-skewMs} ms old` : `timestamp ${skewMs} ms ahead`;
  say.end(`server: knock.accepted (user ${field(accepted, 'user')}, from ${field(accepted, 'source')}, ${age})`);
  say.line(`   server: grant.opened ${field(opened, 'port')} for ${field(opened, 'address')}, ${field(opened, 'ttlSeconds')} s`);
  const set = await execIn(SERVER.ns, ['nft', 'list', 'map', 'inet', 'sesame', 'allow4']);
  const element = /(\d+\.\d+\.\d+\.\d+ \. tcp \. \d+)[^,}]*?expires (\S+?)(?=\s|,|})/.exec(set.stdout);
  if (element !== null) say.line(`   nftables in ${SERVER.ns}: map allow4 holds ${element[1] ?? ''}, expires in ${element[2] ?? ''}`);

  r.step = 'step 3 (port open)';
  say.begin(`3. ${CONNECT}`);
  const banner = await expectOpen('after the knock');
  say.end(`open: "${banner}"`);

  r.step = 'step 4 (replay)';
  say.begin(`4. Client replays the very same ${packet.length} bytes`);
  since = log.length;
  await sendUdp(CLIENT.ns, SERVER.ip, KNOCK_PORT, packet);
  const replay = await expectEvent(log, ['knock.dropped', 'knock.accepted'], since, 'knock.dropped');
  if (field(replay, 'reason') !== 'replay') throw new Error(`the replayed packet was dropped for "${field(replay, 'reason')}", expected "replay"`);
  say.end('refused: replay (server: knock.dropped, reason "replay"); nothing opened or answered');
}

/** Steps 5-6: revocation closes access at once; a short grant expires in the kernel. */
async function revokeExpire(r: Run, s: Stage): Promise<void> {
  const { say, log } = s;
  r.step = 'step 5 (revoke)';
  const revoke = ['user', 'revoke', 'alice', '--reason', 'demo', '-c', s.config];
  say.begin(`5. Admin: ${s.show(revoke)}`);
  let since = log.length;
  await s.sesame(revoke);
  const revoked = await expectEvent(log, ['user.revoked'], since, 'user.revoked');
  const closed = await expectEvent(log, ['grant.closed'], since, 'grant.closed');
  say.end(`server: user.revoked ${field(revoked, 'user')}, grant.closed ${field(closed, 'port')} for ${field(closed, 'address')}`);
  say.begin(`   ${CONNECT}`);
  await expectClosed('after the revocation');
  say.end('closed: access gone at once, not at the grant\'s timeout');

  r.step = 'step 6 (expiry)';
  const readd = [...s.addAlice, '--force'];
  say.begin(`6. Admin: ${s.show(readd)}`);
  since = log.length;
  await s.sesame(readd);
  await expectEvent(log, ['users.reloaded'], since, 'users.reloaded');
  say.end('alice is back (server: users.reloaded)');
  const waitArgs = [...s.knockArgs, '--wait', '-d', String(GRANT.shortSeconds)];
  say.begin(`   Client: ${s.show(waitArgs)}`);
  since = log.length;
  const waited = await execIn(CLIENT.ns, [process.execPath, CLI, ...waitArgs], { env: s.env });
  if (waited.code !== 0) throw new Error(`${s.show(waitArgs)} failed (exit ${waited.code}): ${waited.stderr.trim()}`);
  await log.next(['grant.opened'], since, TIMING.eventMs);
  await sleep(TIMING.settleMs); // --wait may have re-knocked: the last grant's timeout is the one that counts
  const grant = log.last((e) => e.event === 'grant.opened', since);
  if (grant === undefined) throw new Error('no grant.opened after the knock');
  const after = /\((\d+ ms) after the knock\)/.exec(waited.stderr)?.[1];
  say.end(`open${after === undefined ? '' : ` ${after} after the knock`}`);
  const ttl = field(grant.event, 'ttlSeconds');
  say.line(`   server: grant.opened ${field(grant.event, 'port')} for ${field(grant.event, 'address')}, ${ttl} s`);
  const expiresAt = grant.atMs + (Number(ttl) > 0 ? Number(ttl) : GRANT.shortSeconds) * 1000;
  say.begin('   Waiting for the grant to expire');
  for (let left = expiresAt - performance.now(); left > 0; left = expiresAt - performance.now()) {
    say.progress(`${(left / 1000).toFixed(1)} s left`);
    await sleep(Math.min(100, left));
  }
  await sleep(TIMING.expiryMarginMs);
  say.end(`its ${ttl} s are up`);
  say.begin(`   ${CONNECT}`);
  await expectClosed('after the grant expired');
  say.end('closed: grant expired in the kernel (nftables element timeout)');
}

async function expectEvent(log: DaemonLog, names: readonly string[], since: number, wanted: string): Promise<LogEvent> {
  const event = await log.next(names, since, TIMING.eventMs);
  if (field(event, 'event') !== wanted) {
    const why = ['reason', 'err'].filter((k) => event[k] !== undefined).map((k) => `${k}: ${field(event, k)}`).join(', ');
    throw new Error(`expected ${wanted}, but the daemon logged ${field(event, 'event')}${why === '' ? '' : ` (${why})`}`);
  }
  return event;
}

async function expectClosed(when: string): Promise<void> {
  const p = await probeTcp(CLIENT.ns, SERVER.ip, PORT, TIMING.connectMs, { readBanner: true });
  if (p.state !== 'timeout') throw new Error(`expected tcp/${PORT} to be closed ${when}, but the connect ended: ${p.state === 'error' ? p.code : p.state}`);
}

async function expectOpen(when: string): Promise<string> {
  const p = await probeTcp(CLIENT.ns, SERVER.ip, PORT, TIMING.connectMs, { readBanner: true });
  if (p.state !== 'open') throw new Error(`expected tcp/${PORT} to be open ${when}, but the connect ended: ${p.state === 'error' ? p.code : `no answer in ${TIMING.connectMs / 1000} s`}`);
  return p.banner;
}
