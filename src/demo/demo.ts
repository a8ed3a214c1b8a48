// `sesame demo`: a narrated run of the real daemon and the real client in two throwaway network namespaces, cleaned up on success, failure and Ctrl-C. Trusts only what it started; touches only sesame-demo-* namespaces and its own temp dir, never the host's interfaces or firewall.
import type { ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parse } from '../cli/args.ts';
import { EXIT } from '../errors.ts';
import { DaemonLog, field, isRecord } from '../harness/daemon-log.ts';
import type { LogEvent } from '../harness/daemon-log.ts';
import { Narrator } from './narrator.ts';
import { createPair, killStarted, listNamespaces, probeTcp, removeNamespace, run, runIn, sendUdp, spawnIn, startBannerService, stopStarted } from '../harness/netns.ts';

const PREFIX = 'sesame-demo-';
const SERVER = { ns: `${PREFIX}srv`, dev: 'veth-srv', cidr: '10.77.0.1/24', ip: '10.77.0.1' } as const;
const CLIENT = { ns: `${PREFIX}cli`, dev: 'veth-cli', cidr: '10.77.0.2/24', ip: '10.77.0.2' } as const;
const PORT = 2222;
const KNOCK_PORT = 62201;
const GRANT = { defaultSeconds: 10, shortSeconds: 3 } as const;
const TIMING = { connectMs: 1_000, eventMs: 5_000, daemonStartMs: 10_000, expiryMarginMs: 500, settleMs: 200 } as const;
const BANNER = 'SSH-2.0-demo service behind sesame';
/** This file runs as dist/src/cmd-demo.js, next to the real CLI. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

const HELP = `usage: sesame demo

Runs a narrated demo as root on Linux with nftables, in about 12 s: two throwaway network namespaces
(${SERVER.ns} ${SERVER.ip}, ${CLIENT.ns} ${CLIENT.ip}), a fresh server key and user key, the real daemon
guarding a TCP service on port ${PORT}, and the real client: port closed, knock, port open, replay refused,
user revoked, grant expired. Everything it creates is removed at the end, also on Ctrl-C or failure;
the host's own interfaces and firewall are never touched.
`;

/** An operator-fixable reason the demo cannot run here (as opposed to a step that failed). */
class Missing extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function preflight(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `the demo needs Linux (network namespaces and nftables); this is ${process.platform}`;
  if (Number(process.versions.node.split('.')[0]) < 20) return `the demo needs Node.js 20 or newer; this is ${process.version}`;
  if (process.getuid?.() !== 0) return 'not running as root, which creating network namespaces and nftables rules needs; run it as root: sudo npm run demo';
  if ((await run('ip', ['-V'])).spawnError === 'ENOENT') return '`ip` (iproute2) is missing: apt-get install iproute2';
  if ((await run('nft', ['--version'])).spawnError === 'ENOENT') return '`nft` is missing: apt-get install nftables';
  return undefined;
}

/** State that cleanup needs, whichever way the demo ends. */
interface Run {
  readonly say: Narrator;
  readonly started: number;
  dir: string | undefined;
  daemon: ChildProcessByStdio<null, Readable, Readable> | undefined;
  step: string;
  cleaned: boolean;
}

/** Ends everything the demo started, deletes both namespaces (and with the server's, the daemon's nftables table) and the temp dir. Synchronous and idempotent. */
function cleanupSync(r: Run): void {
  if (r.cleaned) return;
  r.cleaned = true;
  r.say.interrupt();
  killStarted();
  removeNamespace(SERVER.ns);
  removeNamespace(CLIENT.ns);
  if (r.dir !== undefined) rmSync(r.dir, { recursive: true, force: true });
}

/** The normal way out: let the daemon stop on SIGTERM (it logs server.stopped), then remove the rest. */
async function cleanup(r: Run): Promise<void> {
  const daemon = r.daemon;
  if (daemon !== undefined && daemon.exitCode === null && daemon.signalCode === null) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2_000);
      daemon.once('exit', () => resolve(clearTimeout(timer)));
      daemon.kill('SIGTERM');
    });
  }
  await stopStarted();
  cleanupSync(r);
}

export async function demo(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, false);
  if (values.help === true) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const missing = await preflight();
  if (missing !== undefined) {
    process.stderr.write(`sesame demo cannot run here: ${missing}\n`);
    return EXIT.failure;
  }
  const r: Run = { say: new Narrator(), started: performance.now(), dir: undefined, daemon: undefined, step: 'setup', cleaned: false };
  const onSignal = (signal: NodeJS.Signals): void => {
    r.say.interrupt();
    process.stdout.write(`${signal}: stopping the demo and removing what it created ...\n`);
    cleanupSync(r);
    process.stdout.write(`${leftText() ?? cleanedText(r)}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const onCrash = (err: unknown): void => {
    r.say.interrupt();
    process.stderr.write(`sesame demo: internal error at ${r.step}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    cleanupSync(r);
    process.exit(EXIT.failure);
  };
  const onExit = (): void => cleanupSync(r);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('uncaughtException', onCrash);
  process.on('exit', onExit);
  let code: number = EXIT.ok;
  try {
    await steps(r);
  } catch (err) {
    r.say.interrupt();
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(err instanceof Missing ? `sesame demo cannot run here: ${message}\n` : `sesame demo failed at ${r.step}: ${message}\n`);
    code = EXIT.failure;
  } finally {
    await cleanup(r);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onCrash);
    process.off('exit', onExit);
  }
  const left = leftText();
  if (left !== undefined) {
    process.stderr.write(`${left}\n`);
    return EXIT.failure;
  }
  if (code === EXIT.ok) r.say.line(summary(r));
  r.say.line(cleanedText(r));
  return code;
}

/** Said only if the namespaces survived the cleanup (something outside the demo holds them). */
function leftText(): string | undefined {
  const left = listNamespaces(PREFIX);
  return left.length === 0 ? undefined : `sesame demo: could not delete network namespace(s) ${left.join(', ')}: remove them with "ip netns delete NAME"`;
}

function cleanedText(r: Run): string {
  return `Cleaned up: processes stopped, namespaces ${SERVER.ns} and ${CLIENT.ns} deleted (the daemon's nftables table lived only in ${SERVER.ns})${r.dir === undefined ? '' : `, ${r.dir} removed`}. The host's interfaces and firewall were not touched.`;
}

function summary(r: Run): string {
  return [
    '',
    `All 6 steps done in ${((performance.now() - r.started) / 1000).toFixed(1)} s: closed by default; one knock opened one port for one address, for a limited time;`,
    'the replayed packet was refused; revoking the user closed access at once; the last grant expired in the kernel.',
    '',
    'Next, in README.md: "Everyday use: from `sesame keygen` to ssh" (your own keys and servers), "Managing users",',
    '"Running a server" (config, firewall, logs) and "Protocol (version 1)".',
  ].join('\n');
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

async function steps(r: Run): Promise<void> {
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
    throw new Missing(`cannot create network namespaces (${err instanceof Error ? err.message : String(err)}); the kernel, or the container this runs in, must allow them (in Docker: --privileged)`);
  }
  const nft = await runIn(SERVER.ns, ['nft', 'list', 'tables']);
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
  await sesame(['server', 'init', dir]);
  const doc: unknown = JSON.parse(readFileSync(config, 'utf8'));
  if (!isRecord(doc)) throw new Error(`${config} is not a JSON object`);
  const edited = { ...doc, listen: ['0.0.0.0'], protect: [`tcp/${PORT}`], defaultDurationSeconds: GRANT.defaultSeconds, maxDurationSeconds: GRANT.defaultSeconds };
  writeFileSync(config, `${JSON.stringify(edited, null, 2)}\n`);
  say.end(`server key pair; config.json edited to protect tcp/${PORT}, grants of at most ${GRANT.defaultSeconds} s`);
  say.begin('  sesame keygen -f DIR/alice');
  const keyId = /Key id: ([0-9a-f]+)/.exec(await sesame(['keygen', '-f', alice, '-C', 'alice@demo']))?.[1] ?? '?';
  say.end(`alice's key, key id ${keyId.slice(0, 16)}`);
  const addAlice = ['user', 'add', 'alice', '--key', `${alice}.pub`, '--ports', `tcp/${PORT}`, '-c', config];
  say.begin(`  ${show(addAlice)}`);
  await sesame(addAlice);
  say.end('done');

  say.begin(`  service in ${SERVER.ns} on 0.0.0.0:${PORT}`);
  await startBannerService(SERVER.ns, PORT, BANNER);
  say.end(`answers "${BANNER}"`);
  say.begin(`  sesame server -c DIR/config.json, in ${SERVER.ns}`);
  r.daemon = spawnIn(SERVER.ns, [process.execPath, CLI, 'server', '-c', config], env);
  const log = new DaemonLog(r.daemon);
  const up = (await log.next(['server.started'], 0, TIMING.daemonStartMs)).event;
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
  const set = await runIn(SERVER.ns, ['nft', 'list', 'set', 'inet', 'sesame', 'allow4']);
  const element = /(\d+\.\d+\.\d+\.\d+ \. tcp \. \d+)[^,}]*?expires (\S+?)(?=\s|,|})/.exec(set.stdout);
  if (element !== null) say.line(`   nftables in ${SERVER.ns}: set allow4 holds ${element[1] ?? ''}, expires in ${element[2] ?? ''}`);

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
  const waited = await runIn(CLIENT.ns, [process.execPath, CLI, ...waitArgs], { env: s.env });
  if (waited.code !== 0) throw new Error(`${s.show(waitArgs)} failed (exit ${waited.code}): ${waited.stderr.trim()}`);
  await log.next(['grant.opened'], since, TIMING.eventMs);
  await sleep(TIMING.settleMs); // --wait may have re-knocked: the last grant's timeout is the one that counts
  const grant = log.events.slice(since).filter((e) => field(e.event, 'event') === 'grant.opened').at(-1);
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
  const { event } = await log.next(names, since, TIMING.eventMs);
  if (field(event, 'event') !== wanted) {
    const why = ['reason', 'err'].filter((k) => event[k] !== undefined).map((k) => `${k}: ${field(event, k)}`).join(', ');
    throw new Error(`expected ${wanted}, but the daemon logged ${field(event, 'event')}${why === '' ? '' : ` (${why})`}`);
  }
  return event;
}

async function expectClosed(when: string): Promise<void> {
  const p = await probeTcp(CLIENT.ns, SERVER.ip, PORT, TIMING.connectMs);
  if (p.state !== 'timeout') throw new Error(`expected tcp/${PORT} to be closed ${when}, but the connect ended: ${p.state === 'error' ? p.code : p.state}`);
}

async function expectOpen(when: string): Promise<string> {
  const p = await probeTcp(CLIENT.ns, SERVER.ip, PORT, TIMING.connectMs);
  if (p.state !== 'open') throw new Error(`expected tcp/${PORT} to be open ${when}, but the connect ended: ${p.state === 'error' ? p.code : `no answer in ${TIMING.connectMs / 1000} s`}`);
  return p.banner;
}
