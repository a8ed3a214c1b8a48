// Every command in README.md's ```sh blocks is run here, or named with the test or CI step that runs it, or said to be not runnable and why; the user's journey runs as README text through `bash -c` (real namespaces, sshd, ssh-agent, daemon). Trusts README.md and the test's own code.
//
// How a README command runs here: `bash -c TEXT` in a namespace, with `sesame` on PATH (a wrapper exec'ing node dist/src/cli.js)
// and `ssh` on PATH (a wrapper adding -F $HOME/.ssh/config: OpenSSH reads the passwd entry's home, not $HOME), HOME a temp dir,
// the working directory a temp dir holding the files the README names, and ssh.example.com resolving to the server namespace
// through /etc/netns/<client ns>/hosts. The text is changed only by rewrite() in test/helpers/readme.ts (implicit defaults
// -c /etc/sesame/config.json and --state-dir /var/lib/sesame made explicit, then /etc/sesame and /var/lib/sesame replaced by
// temp directories) and by each entry's `as` (placeholders such as PATH, a made-up key or invitation, given real values).
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DaemonLog, isRecord } from '../../src/harness/daemon-log.ts';
import { spawnIn, stopChild } from '../../src/harness/netns.ts';
import { tcpConnect } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import { CLI } from '../helpers/daemon.ts';
import { expandOptional, readmeCommands, readmeSshConfig, rewrite } from '../helpers/readme.ts';
import type { Paths } from '../helpers/readme.ts';
import { startAgent } from '../helpers/ssh-agent.ts';
import type { SshAgent } from '../helpers/ssh-agent.ts';
import { sshMissing, startSshd } from '../helpers/sshd.ts';
import type { SshServer } from '../helpers/sshd.ts';

/** run: executed below (as: placeholder -> real value); covered: where else it runs; never: why nothing can run it. */
type Entry = { run: string; as?: Record<string, string> } | { covered: string } | { never: string };

const TABLE: Record<string, Entry> = {
  'apt-get update && apt-get install -y nftables iproute2 && npm ci && npm run demo': { covered: '.ci/run: apt-get install (a superset), npm ci; test/demo/demo.test.ts runs the demo' },
  'apt-get update && apt-get install -y nftables iptables iproute2 openssh-server openssh-client libpcap-dev python3 make g++ && npm ci && npm test': { covered: '.ci/run: apt-get install (a superset), npm ci, npm test' },
  'git clone <this repository> sesame && cd sesame': { never: 'no repository address to clone; CI runs .ci/run in a fresh clone' },
  'npm ci && npm run package': { covered: '.ci/run: npm ci, npm run package' },
  'apt-get install -y ./dist/sesame_*.deb': { covered: 'test/e2e/package.test.ts (apt-get install of the built .deb, from .ci/run)' },
  'sesame --version': { run: 'literally' },
  'sesame keygen': { run: 'literally; both passphrase prompts answered through SSH_ASKPASS (the terminal prompt: test/cli/passphrase.test.ts)' },
  'sesame keygen -f PATH -C COMMENT': { run: 'placeholders filled', as: { PATH: 'laptop', COMMENT: 'alice@laptop' } },
  "sesame keygen -f PATH -N ''": { run: 'placeholder filled (you.pub: the key of "sesame user add you")', as: { PATH: 'you' } },
  'sesame keygen --server -f /etc/sesame/server.key': { run: 'paths rewritten' },
  'ssh-add ~/.config/sesame/id_ed25519': { run: 'literally, into a throwaway ssh-agent; the passphrase through SSH_ASKPASS' },
  'cat ~/.config/sesame/id_ed25519.pub': { run: 'literally; its output becomes alice.pub' },
  'sesame user add alice --key alice.pub --ports tcp/22 --host ssh.example.com': { run: 'paths rewritten; prints the invitation' },
  'sesame profile import sesame-invite:1:ssh.example.com,62201,tcp/22,1rSv_dUlWaFe9UKd51A8l8hsBhrYEQOg1TWXDpW6WnM,98qhW3od': { run: 'with the invitation "user add" printed in place of the made-up one' },
  'sesame knock ssh.example.com --wait && ssh ssh.example.com': { run: 'literally: the agent signs, sshd on port 22 logs the login' },
  'sesame user add alice --key alice.pub [--ports tcp/22,udp/51820] [--max-duration 2m] [--from 203.0.113.0/24] [--may-open-other]': { run: 'without and with the optional parts' },
  'sesame user add alice --key "ssh-ed25519 AAAA... alice@desktop"': { run: 'with a real key made by ssh-keygen', as: { 'AAAA...': '$(cut -d" " -f2 desktop.pub)' } },
  'sesame user set alice --ports tcp/22 [--max-duration 1m] [--from 198.51.100.0/24] [--no-may-open-other]': { run: 'without and with the optional parts' },
  'sesame user list': { run: 'paths rewritten' },
  'sesame user show alice': { run: 'paths rewritten' },
  'sesame user invite alice --host ssh.example.com [--knock-port 62201] [--qr]': { run: 'without and with the optional parts' },
  'sesame user revoke alice [--key KEYID] [--reason "laptop lost"] [--keep-sessions]': { run: 'without and with the optional parts; KEYID is the desktop key\'s id' },
  'sesame user remove alice': { run: 'paths rewritten' },
  'sesame status [--json]': { run: 'without and with --json, while alice holds a grant' },
  'sesame grant close --user alice': { run: 'paths rewritten; status then lists no grant of alice' },
  'sesame server init /etc/sesame': { run: 'paths rewritten; there is no sesame user here, so it writes root-only files and a daemon run as root (the package test covers the sesame user)' },
  'sesame user add you --key you.pub': { run: 'paths rewritten' },
  'systemctl enable --now sesame': { never: 'no systemd in CI; the unit is checked by systemd-analyze verify in .ci/run, and run as the unit runs it by test/e2e/package.test.ts' },
  'setpriv --reuid=sesame --regid=sesame --init-groups --inh-caps=+net_admin --ambient-caps=+net_admin sesame server -c /etc/sesame/config.json --check': { covered: 'test/e2e/package.test.ts (it makes the sesame user); here the same "sesame server -c ... --check" runs as root, and without --check is the daemon' },
  'apt-get install -y libpcap-dev python3 make g++ && npm install cap': { covered: '.ci/run: apt-get install (a superset); npm ci builds the optional cap' },
  'sesame server -c /etc/sesame/config.json --capture pcap --interface eth0': { covered: 'test/e2e/pcap.test.ts (the daemon with --capture pcap on its namespace\'s interface)' },
  // "Running a fleet": setting up etcd itself. The fleet tests do each step with their own names, on loopback addresses in namespaces.
  'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=sesame-etcd-ca -keyout ca.key -out ca.crt': { covered: 'test/e2e/fleet-tls.test.ts: the same openssl req -x509 for its CA' },
  'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=sesame-server -keyout client.key -out client.csr': { covered: 'test/e2e/fleet-tls.test.ts: the same openssl req per certificate' },
  'openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -out client.crt': { covered: 'test/e2e/fleet-tls.test.ts: the same openssl x509 -req (with IP SANs from an extension file)' },
  'etcd --name etcd1 --data-dir /var/lib/etcd --listen-client-urls https://10.0.0.11:2379 --advertise-client-urls https://10.0.0.11:2379 --listen-peer-urls https://10.0.0.11:2380 --initial-advertise-peer-urls https://10.0.0.11:2380 --initial-cluster etcd1=https://10.0.0.11:2380,etcd2=https://10.0.0.12:2380,etcd3=https://10.0.0.13:2380 --cert-file etcd1.crt --key-file etcd1.key --trusted-ca-file ca.crt --client-cert-auth --peer-cert-file etcd1.crt --peer-key-file etcd1.key --peer-trusted-ca-file ca.crt --peer-client-cert-auth': { covered: 'src/harness/etcd.ts (fleet tests): members started with these client TLS flags; their peers talk plain HTTP on namespace loopback, so the --peer-* TLS flags (etcd\'s own) are not run' },
  'etcdctl user add root && etcdctl role add sesame-server && etcdctl role add sesame-admin': { covered: 'test/e2e/fleet-tls.test.ts: etcdctl user add / role add before auth enable (user add asks for a password on a terminal)' },
  'etcdctl role grant-permission sesame-server read --prefix=true /sesame/': { covered: 'test/e2e/fleet-tls.test.ts: role grant-permission --prefix=true over the prefix' },
  'etcdctl role grant-permission sesame-admin readwrite --prefix=true /sesame/': { covered: 'test/e2e/fleet-tls.test.ts: role grant-permission readwrite --prefix=true' },
  'etcdctl user add sesame-server --no-password && etcdctl user grant-role sesame-server sesame-server': { covered: 'test/e2e/fleet-tls.test.ts: an etcd user the daemon authenticates as by its certificate\'s CN (there it also has a password), granted a role' },
  'etcdctl user add alice-admin && etcdctl user grant-role alice-admin sesame-admin': { covered: 'test/e2e/fleet-tls.test.ts: a password user for the CLI, granted a role' },
  'etcdctl auth enable': { covered: 'test/e2e/fleet-tls.test.ts: etcdctl auth enable' },
};

const KEY_PASSPHRASE = 'readme passphrase';
const STEP_MS = 30_000;

test('every command in the README is in this test\'s table, and every table entry is in the README', () => {
  const commands = readmeCommands();
  const missing = commands.filter((c) => TABLE[c] === undefined);
  assert.deepEqual(missing, [], `README commands missing from TABLE in test/e2e/readme.test.ts: add each as run (and run it), covered (say where) or never (say why)`);
  const stale = Object.keys(TABLE).filter((c) => !commands.includes(c));
  assert.deepEqual(stale, [], 'TABLE entries no longer in README.md: remove them');
});

const sesameUser = spawnSync('getent', ['passwd', 'sesame']).status === 0;
const skip = skipReason() ?? sshMissing();

describe('the README\'s commands, run as its text', { skip, timeout: 300_000 }, () => {
  let topo: Topology;
  let root = '';
  let sshd: SshServer;
  let agent: SshAgent;
  let daemon: ReturnType<typeof spawnIn> | undefined;
  let log: DaemonLog;
  let hostsDir = '';
  let madeNetns = false;
  let invite = '';
  const ran = new Set<string>();
  const dir = (name: string): string => join(root, name);
  // Where the package test left its "sesame" user, init is told the daemon runs as root (the rewrite says so).
  const paths = (name: string): Paths => ({ etc: dir(`${name}-etc`), state: dir(`${name}-state`), rootDaemon: sesameUser });
  const main = (): Paths => paths('server');

  /** Runs README text in ns (or on the host) as described in the header; askpass answers passphrase prompts. */
  const sh = (ns: string | undefined, readme: string, p: Paths = main(), opts: { text?: string; askpass?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    ran.add(readme);
    const entry = TABLE[readme];
    let text = opts.text ?? readme;
    if (entry !== undefined && 'as' in entry) for (const [from, to] of Object.entries(entry.as ?? {})) text = text.replaceAll(from, to);
    text = rewrite(text, p);
    const env: NodeJS.ProcessEnv = { PATH: `${dir('bin')}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: dir('home'), SSH_AUTH_SOCK: agent.socket, LANG: 'C.UTF-8' };
    if (opts.askpass === true) Object.assign(env, { SSH_ASKPASS: dir('askpass'), SSH_ASKPASS_REQUIRE: 'force' });
    const argv = [...(ns === undefined ? [] : ['netns', 'exec', ns]), 'setsid', '-w', 'bash', '-c', text];
    return new Promise((resolve) => {
      const child = execFile(ns === undefined ? argv[0] ?? '' : 'ip', ns === undefined ? argv.slice(1) : argv, { cwd: dir('work'), env, timeout: STEP_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr: `${text}\n${stderr}` });
      });
      child.stdin?.end(); // stdin at EOF: ssh's remote shell reads nothing and exits
    });
  };
  const ok = async (ns: string | undefined, readme: string, p?: Paths, opts?: { text?: string; askpass?: boolean }): Promise<string> => {
    const r = await sh(ns, readme, p, opts);
    assert.equal(r.code, 0, `README command failed (exit ${r.code}): ${readme}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  };
  const logins = (): number => (sshd.log().match(/Accepted publickey/g) ?? []).length;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'sesame-readme-'));
    for (const d of ['bin', 'home', 'work']) mkdirSync(dir(d), { mode: 0o700 });
    writeFileSync(dir('bin/sesame'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
    writeFileSync(dir('bin/ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F "$HOME/.ssh/config" "$@"\n`, { mode: 0o755 });
    writeFileSync(dir('askpass'), `#!/bin/sh\necho '${KEY_PASSPHRASE}'\n`, { mode: 0o700 });
    topo = await createTopology('readme');
    madeNetns = !existsSync('/etc/netns');
    hostsDir = join('/etc/netns', topo.client.ns);
    mkdirSync(hostsDir, { recursive: true });
    writeFileSync(join(hostsDir, 'hosts'), `127.0.0.1 localhost\n${topo.server.v4} ssh.example.com\n`);
    agent = await startAgent();
    sshd = await startSshd(topo.server.ns, { ports: [22], hosts: ['ssh.example.com'], listen: ['0.0.0.0'] });
    const argv = sshd.ssh('ssh.example.com', 22, []);
    const knownHosts = argv.find((a) => a.startsWith('UserKnownHostsFile='))?.slice('UserKnownHostsFile='.length) ?? '';
    mkdirSync(dir('home/.ssh'), { mode: 0o700 });
    // Port 22 is known_hosts' bare host name, not [host]:22.
    writeFileSync(dir('home/.ssh/known_hosts'), readFileSync(knownHosts, 'utf8').replaceAll('[ssh.example.com]:22', 'ssh.example.com'));
    const mine = ['Host *', '    User root', `    IdentityFile ${sshd.clientKey}`, '    IdentitiesOnly yes', `    UserKnownHostsFile ${dir('home/.ssh/known_hosts')}`,
      '    GlobalKnownHostsFile /dev/null', '    StrictHostKeyChecking yes', '    BatchMode yes', '    ConnectTimeout 10', '    LogLevel VERBOSE', ''];
    writeFileSync(dir('home/.ssh/config'), `${readmeSshConfig()}\n${mine.join('\n')}`, { mode: 0o600 });
  });

  after(async () => {
    if (daemon !== undefined) await stopChild(daemon);
    await sshd?.stop().catch(() => {});
    agent?.stop();
    await topo?.destroy();
    if (hostsDir !== '') rmSync(hostsDir, { recursive: true, force: true });
    if (madeNetns && existsSync('/etc/netns') && readdirSync('/etc/netns').length === 0) rmdirSync('/etc/netns');
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  test('keys: sesame keygen (encrypted, default path), ssh-add, cat .pub; keygen with -f, -C, -N, --server', async () => {
    assert.match(await ok(topo.client.ns, 'sesame --version'), /^sesame \d+\.\d+\.\d+/);
    await ok(topo.client.ns, 'sesame keygen', undefined, { askpass: true });
    const key = dir('home/.config/sesame/id_ed25519');
    assert.equal(spawnSync('ssh-keygen', ['-y', '-P', '', '-f', key]).status !== 0, true, 'the key is encrypted');
    assert.equal(spawnSync('ssh-keygen', ['-y', '-P', KEY_PASSPHRASE, '-f', key]).status, 0, 'the passphrase opens it');
    await ok(topo.client.ns, 'ssh-add ~/.config/sesame/id_ed25519', undefined, { askpass: true });
    const pub = await ok(topo.client.ns, 'cat ~/.config/sesame/id_ed25519.pub');
    assert.match(pub, /^ssh-ed25519 AAAA\S+ \S/);
    writeFileSync(dir('work/alice.pub'), pub);
    await ok(topo.client.ns, 'sesame keygen -f PATH -C COMMENT', undefined, { askpass: true });
    assert.match(readFileSync(dir('work/laptop.pub'), 'utf8'), / alice@laptop\n$/);
    await ok(topo.client.ns, "sesame keygen -f PATH -N ''");
    assert.match(readFileSync(dir('work/you'), 'utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----/);
    mkdirSync(paths('keys').etc);
    assert.match(await ok(undefined, 'sesame keygen --server -f /etc/sesame/server.key', paths('keys')), /SHA256:/);
    assert.match(readFileSync(join(paths('keys').etc, 'server.pub'), 'utf8'), /^sesame-x25519 /);
  });

  test('the server: server init, user add you, --check, the daemon; user add alice prints her invitation', async () => {
    assert.match(await ok(topo.server.ns, 'sesame server init /etc/sesame'), sesameUser ? /The daemon runs as root \(--user\)/ : /no "sesame" user on this host/);
    assert.match(await ok(topo.server.ns, 'sesame user add you --key you.pub'), /added user you/);
    const setpriv = Object.keys(TABLE).find((c) => c.startsWith('setpriv ')) ?? '';
    const server = setpriv.slice(setpriv.indexOf('sesame server'));
    assert.match(await ok(topo.server.ns, setpriv, main(), { text: server }), /SHA256:/);
    const foreground = rewrite(server.replace(/ --check$/, ''), main());
    daemon = spawnIn(topo.server.ns, ['bash', '-c', `exec ${foreground}`], { PATH: `${dir('bin')}:${process.env['PATH'] ?? ''}`, HOME: dir('home') });
    log = new DaemonLog(daemon);
    await log.waitFor((e) => e.event === 'server.started', 15_000, 0, 'server.started');
    const out = await ok(topo.server.ns, 'sesame user add alice --key alice.pub --ports tcp/22 --host ssh.example.com');
    invite = /^sesame-invite:1:ssh\.example\.com,62201,tcp\/22,\S+$/m.exec(out)?.[0] ?? '';
    assert.notEqual(invite, '', `an invitation line in: ${out}`);
    await log.waitFor((e) => e.event === 'key.added', 10_000, 0, 'key.added');
  });

  test('the user: profile import, then knock --wait && ssh; the ~/.ssh/config ProxyCommand and ssh prod', async () => {
    const imported = Object.keys(TABLE).find((c) => c.startsWith('sesame profile import ')) ?? '';
    assert.match(await ok(topo.client.ns, imported, main(), { text: imported.replace(/sesame-invite:\S+/, invite) }), /SHA256:/);
    assert.equal(await tcpConnect(topo.client.ns, topo.server.v4, 22, 1000), false, 'tcp/22 closed before the knock');
    let since = log.length;
    const before = logins();
    await ok(topo.client.ns, 'sesame knock ssh.example.com --wait && ssh ssh.example.com');
    assert.equal((await log.waitFor((e) => e.event === 'knock.accepted', 5000, since, 'knock.accepted'))['user'], 'alice');
    assert.ok(logins() > before, `sshd logged the login: ${sshd.log().slice(-1500)}`);
    // The README's "sesame profile import LINE --name prod" (prose), so that the alias prod is a profile; then "ssh prod".
    await ok(topo.client.ns, 'sesame profile import LINE --name prod', main(), { text: `sesame profile import ${invite} --name prod` });
    since = log.length;
    const again = logins();
    await ok(topo.client.ns, 'ssh prod', main(), { text: 'ssh prod' });
    assert.equal((await log.waitFor((e) => e.event === 'knock.accepted', 5000, since, 'knock.accepted'))['user'], 'alice');
    assert.ok(logins() > again, 'ssh prod logged in through ProxyCommand sesame ssh-proxy %n %p');
  });

  test('status lists alice\'s grant; grant close --user alice closes it', async () => {
    const synopsis = 'sesame status [--json]';
    const v = expandOptional(synopsis);
    assert.match(await ok(topo.server.ns, synopsis, main(), { text: v.without }), /alice/);
    const grants = async (): Promise<unknown[]> => {
      const doc: unknown = JSON.parse(await ok(topo.server.ns, synopsis, main(), { text: v.with }));
      return isRecord(doc) && Array.isArray(doc['grants']) ? doc['grants'] : assert.fail(`status --json has no grants list: ${JSON.stringify(doc)}`);
    };
    assert.ok((await grants()).some((g) => JSON.stringify(g).includes('"alice"')), 'status --json lists alice');
    await ok(topo.server.ns, 'sesame grant close --user alice');
    assert.deepEqual((await grants()).filter((g) => JSON.stringify(g).includes('"alice"')), []);
  });

  test('"Managing users", every line, without and with its optional parts', async () => {
    assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@desktop', '-f', dir('work/desktop')]).status, 0);
    const block = Object.keys(TABLE).filter((c) => /^sesame user (add alice --key (alice\.pub \[|")|set|list|show|invite|revoke|remove)/.test(c));
    for (const variant of ['without', 'with'] as const) {
      const p = paths(`users-${variant}`);
      await ok(undefined, 'sesame server init /etc/sesame', p);
      let keyId = '';
      for (const line of block) {
        const text = expandOptional(line)[variant].replace('KEYID', keyId);
        const out = await ok(undefined, line, p, { text });
        if (line === 'sesame user show alice') keyId = /([0-9a-f]{32})\s+alice@desktop/.exec(out)?.[1] ?? 'no key id shown';
      }
      assert.notEqual((await sh(undefined, 'sesame user show alice', p)).code, 0, 'alice is gone after user remove');
    }
  });

  test('every entry marked run was run', () => {
    const notRun = Object.entries(TABLE).filter(([c, e]) => 'run' in e && !ran.has(c)).map(([c]) => c);
    assert.deepEqual(notRun, []);
  });
});
