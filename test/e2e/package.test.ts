// End to end for the Debian package named by SESAME_DEB (npm run package; .ci/run sets it): apt-get installs a working sesame and a unit that is neither enabled nor started; "sesame server init" sets up files the sesame user can run with; the daemon, run as the unit runs it (the sesame user, CAP_NET_ADMIN only), opens tcp/22 for a knock sent by the installed client; apt-get remove and purge keep the configuration and take sesame off PATH. Trusts the test's own code; changes the host only by installing and then purging the package (and the user and directories it made).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DaemonLog } from '../../src/harness/daemon-log.ts';
import { execIn, run, spawnIn, stopChild } from '../../src/harness/netns.ts';
import type { ExecResult } from '../../src/harness/netns.ts';
import { startTcpListener, tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';

const deb = process.env['SESAME_DEB'] ?? '';
const skip = deb === '' ? 'set SESAME_DEB=/path/to/sesame_VERSION_ARCH.deb (built by npm run package) to test the Debian package; .ci/run does' : skipReason();

/** The unit's User=, Group=, AmbientCapabilities=, CapabilityBoundingSet= and NoNewPrivileges=, as setpriv spells them. */
const AS_UNIT = ['setpriv', '--reuid=sesame', '--regid=sesame', '--init-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--bounding-set=-all,+net_admin', '--no-new-privs'];
const APT_MS = 300_000;
const PROGRAM = '/usr/lib/sesame/dist/src/cli.js';

function must(out: ExecResult, what: string): ExecResult {
  if (out.code !== 0) throw new Error(`${what} failed (${out.spawnError ?? `exit ${out.code}`}): ${(out.stderr || out.stdout).trim()}`);
  return out;
}

const apt = (args: readonly string[]): Promise<ExecResult> => run('apt-get', ['-y', '-q', ...args], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: APT_MS });
/** dpkg's word on the package: '' if it knows nothing of it, else e.g. "install ok installed" or "deinstall ok config-files". */
const dpkgStatus = async (): Promise<string> => { const out = await run('dpkg-query', ['-W', '-f=${Status}', 'sesame']); return out.code === 0 ? out.stdout : ''; };
const passwd = async (): Promise<string[] | undefined> => { const out = await run('getent', ['passwd', 'sesame']); return out.code === 0 ? out.stdout.trim().split(':') : undefined; };
const modeOf = (st: Stats): string => `0${(st.mode & 0o7777).toString(8)}`;
/** One top-level field of a JSON file, for comparison. */
const jsonField = (path: string | URL, key: string): unknown => {
  const doc: unknown = JSON.parse(readFileSync(path, 'utf8'));
  return typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>)[key] : undefined;
};

/** Processes running the packaged program (the unit would show up here if anything started it). */
function packagedProcesses(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(PROGRAM);
    } catch {
      return false; // gone meanwhile
    }
  }).map(Number);
}

function symlinksUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isSymbolicLink() ? [p] : e.isDirectory() ? symlinksUnder(p) : [];
  });
}

describe('the Debian package', { skip }, () => {
  let had: { user: boolean; etc: boolean; state: boolean } | undefined;
  let tmp = '';
  let uid = -1;
  let gid = -1;
  let topo: Topology | undefined;
  let listener: { stop: () => Promise<void> } | undefined;
  let daemon: ReturnType<typeof spawnIn> | undefined;
  const etc = (): string => join(tmp, 'etc');
  const config = (): string => join(etc(), 'config.json');

  before(async () => {
    const path = resolve(deb);
    assert.ok(existsSync(path), `SESAME_DEB=${deb}: no such file`);
    // A real installation is not the test's to remove.
    if ((await dpkgStatus()).includes('installed') && existsSync('/etc/sesame/config.json')) throw new Error('sesame is installed and set up on this host (/etc/sesame/config.json): refusing to remove it for a test');
    had = { user: (await passwd()) !== undefined, etc: existsSync('/etc/sesame'), state: existsSync('/var/lib/sesame') };
    tmp = mkdtempSync('/tmp/sesame-pkg-');
    chmodSync(tmp, 0o755); // the daemon's user must be able to walk to its files, as to /etc/sesame
    must(await apt(['install', path]), `apt-get install ${path}`);
  });

  after(async () => {
    if (daemon !== undefined) await stopChild(daemon);
    await listener?.stop();
    await topo?.destroy();
    if ((await dpkgStatus()) !== '') must(await apt(['purge', 'sesame']), 'apt-get purge sesame');
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
    if (had === undefined) return;
    // What the package made and a purge leaves (as Debian does): the user, and /etc/sesame, if the test brought them.
    if (!had.user && (await passwd()) !== undefined) must(await run('userdel', ['sesame']), 'userdel sesame');
    if (!had.user && (await run('getent', ['group', 'sesame'])).code === 0) must(await run('groupdel', ['sesame']), 'groupdel sesame');
    if (!had.etc && existsSync('/etc/sesame')) rmdirSync('/etc/sesame');
    if (!had.state) rmSync('/var/lib/sesame', { recursive: true, force: true });
  });

  test('apt-get install: sesame on PATH, a copy in /usr/lib/sesame, the unit installed but neither enabled nor started, the user and its directories made', async () => {
    const version = jsonField(new URL('../../../package.json', import.meta.url), 'version');
    assert.equal(must(await run('sesame', ['--version']), 'sesame --version').stdout.trim(), `sesame ${String(version)}`);
    const files = must(await run('dpkg', ['-L', 'sesame']), 'dpkg -L').stdout.split('\n');
    for (const f of ['/usr/bin/sesame', PROGRAM, '/lib/systemd/system/sesame.service', '/usr/lib/sysusers.d/sesame.conf', '/usr/lib/tmpfiles.d/sesame.conf']) assert.ok(files.includes(f), `the package holds ${f}`);
    assert.deepEqual(symlinksUnder('/usr/lib/sesame'), [], 'a real copy: no link anywhere (into a checkout or elsewhere)');
    assert.equal(lstatSync('/usr/bin/sesame').isSymbolicLink(), false);

    assert.equal(existsSync('/etc/systemd/system/multi-user.target.wants/sesame.service'), false, 'the unit is not enabled');
    assert.deepEqual(packagedProcesses(), [], 'nothing started the daemon');
    if (existsSync('/run/systemd/system')) assert.equal((await run('systemctl', ['is-active', 'sesame'])).stdout.trim(), 'inactive');

    const entry = await passwd();
    assert.ok(entry !== undefined, 'the sesame user exists');
    [uid, gid] = [Number(entry[2]), Number(entry[3])];
    assert.equal(entry[6], '/usr/sbin/nologin');
    const etcDir = statSync('/etc/sesame');
    assert.deepEqual([etcDir.uid, etcDir.gid, modeOf(etcDir)], [0, gid, '0750'], '/etc/sesame root:sesame 0750');
    const stateDir = statSync('/var/lib/sesame');
    assert.deepEqual([stateDir.uid, modeOf(stateDir)], [uid, '0700'], '/var/lib/sesame sesame 0700');
  });

  test('sesame server init, as root, gives the config to root:sesame 0640 and the key to sesame 0600, and refuses to run twice', async () => {
    const out = must(await run('sesame', ['server', 'init', etc(), '--state-dir', join(tmp, 'state'), '--public-host', 'bastion.example.org']), 'sesame server init');
    assert.match(out.stdout, /for the daemon's user sesame/);
    const expect: [string, number, number, string][] = [
      [etc(), 0, gid, '0750'],
      [config(), 0, gid, '0640'],
      [join(etc(), 'users.json'), 0, gid, '0640'],
      [join(etc(), 'server.key'), uid, gid, '0600'],
      [join(etc(), 'server.pub'), 0, 0, '0644'],
      [join(tmp, 'state'), uid, gid, '0700'],
    ];
    for (const [path, u, g, mode] of expect) {
      const st = statSync(path);
      assert.deepEqual([st.uid, st.gid, modeOf(st)], [u, g, mode], path);
    }
    assert.equal(jsonField(config(), 'stateDir'), join(tmp, 'state'));
    const key = readFileSync(join(etc(), 'server.key'), 'utf8');
    const again = await run('sesame', ['server', 'init', etc(), '--state-dir', join(tmp, 'state')]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already holds a sesame setup/);
    assert.equal(readFileSync(join(etc(), 'server.key'), 'utf8'), key, 'the key is untouched');

    must(await run('sesame', ['keygen', '-f', join(tmp, 'alice'), '-C', 'alice@test', '-N', '']), 'sesame keygen');
    const added = must(await run('sesame', ['user', 'add', 'alice', '--key', join(tmp, 'alice.pub'), '-c', config()]), 'sesame user add');
    assert.match(added.stdout, /^sesame-invite:1:bastion\.example\.org,62201,tcp\/22,/m, 'publicHost from init: user add prints the invitation');
    const users = statSync(join(etc(), 'users.json'));
    assert.deepEqual([users.uid, users.gid, modeOf(users)], [0, gid, '0640'], 'an edit keeps the owner and mode');
  });

  test('the daemon, run as the unit runs it (sesame, CAP_NET_ADMIN only), checks its setup and opens tcp/22 for a knock from the installed client', async () => {
    topo = await createTopology('pkg');
    listener = await startTcpListener(topo.server.ns, '0.0.0.0', 22);
    must(await execIn(topo.server.ns, [...AS_UNIT, 'sesame', 'server', '-c', config(), '--check']), 'ExecStartPre: sesame server --check as the sesame user');
    const umask = process.umask(0o077); // the unit's UMask=
    try {
      daemon = spawnIn(topo.server.ns, [...AS_UNIT, 'sesame', 'server', '-c', config()]);
    } finally {
      process.umask(umask);
    }
    const running = daemon;
    const exited = new Promise<number | null>((done) => running.once('exit', done));
    const log = new DaemonLog(running);
    await log.waitFor((e) => e.event === 'server.started', 15_000, 0, 'server.started');
    const status = readFileSync(`/proc/${running.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'), 'runs as sesame');
    assert.match(status, /^CapEff:\s+0000000000001000$/m, 'CAP_NET_ADMIN only');
    assert.ok(readFileSync(`/proc/${running.pid}/cmdline`, 'utf8').split('\0').includes(PROGRAM), 'the packaged program');

    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 22, 400), false, 'tcp/22 closed before the knock');
    const since = log.length;
    const client = { ...process.env, XDG_CONFIG_HOME: join(tmp, 'client') }; // not the host user's profiles
    must(await execIn(topo.client.ns, ['sesame', 'knock', topo.server.v4, '-i', join(tmp, 'alice'), '--server-key', join(etc(), 'server.pub')], { env: client }), 'sesame knock');
    await log.waitFor((e) => e.event === 'grant.opened', 5000, since, 'grant.opened');
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 22, 2000), true, 'tcp/22 open after the knock');
    running.kill('SIGTERM');
    assert.equal(await exited, 0, 'SIGTERM ends it cleanly');
  });

  test('apt-get remove takes sesame off PATH and keeps the configuration; so does purge', async () => {
    must(await apt(['remove', 'sesame']), 'apt-get remove sesame');
    assert.equal((await run('sesame', ['--version'])).spawnError, 'ENOENT', 'sesame is gone from PATH');
    assert.equal(existsSync('/usr/lib/sesame'), false);
    assert.equal(existsSync('/lib/systemd/system/sesame.service'), false);
    for (const f of ['config.json', 'users.json', 'server.key', 'server.pub']) assert.ok(existsSync(join(etc(), f)), `${f} kept`);
    assert.ok(existsSync('/etc/sesame'), '/etc/sesame kept');
    must(await apt(['purge', 'sesame']), 'apt-get purge sesame');
    assert.equal(await dpkgStatus(), '');
    assert.ok(existsSync('/etc/sesame') && existsSync(config()), '/etc/sesame and the configuration kept after purge');
  });
});
