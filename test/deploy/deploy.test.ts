// deploy/: the example config and users files load with the same schemas and parsers the daemon uses; the unit keeps its hardening; the unit, the package's files and `sesame server init` agree on paths, owners and modes.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { DEFAULT_SERVER_CONFIG } from '../../src/cli/args.ts';
import { DEFAULTS } from '../../src/limits.ts';
import { parseConfig } from '../../src/server/config.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';
import { parseUsers } from '../../src/server/users.ts';

const deploy = (name: string): string => new URL(`../../../deploy/${name}`, import.meta.url).pathname;
before(async () => { await loadSodium(); });

test('deploy/config.example.json is a valid config', () => {
  const c = parseConfig(JSON.parse(readFileSync(deploy('config.example.json'), 'utf8')), deploy('config.example.json'));
  assert.deepEqual(c.serverKeyPaths, ['/etc/sesame/server.key']);
  assert.equal(c.usersPath, '/etc/sesame/users.json');
  assert.deepEqual(c.protect, [{ proto: 'tcp', port: 22 }]);
});

test('deploy/users.example.json is a valid users file with an OpenSSH key and a revocation record', () => {
  const t = parseUsers(JSON.parse(readFileSync(deploy('users.example.json'), 'utf8')), deploy('users.example.json'));
  assert.deepEqual([...t.users.keys()], ['alice', 'deploy-bot']);
  assert.equal([...t.keys.values()].filter((k) => k.revoked).length, 1);
  assert.equal(t.policy('deploy-bot')?.from.length, 2);
});

test('the systemd unit keeps least privilege: dedicated user, CAP_NET_ADMIN only, no new privileges, read-only system', () => {
  const unit = readFileSync(deploy('sesame.service'), 'utf8');
  for (const line of ['User=sesame', 'AmbientCapabilities=CAP_NET_ADMIN', 'CapabilityBoundingSet=CAP_NET_ADMIN', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'StateDirectory=sesame', 'Restart=always', 'Wants=network-online.target', 'After=network-online.target nftables.service', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK', 'SystemCallFilter=@system-service']) {
    assert.ok(unit.split('\n').includes(line), `missing ${line}`);
  }
  assert.doesNotMatch(unit, /^User=root/m);
});

const unitLines = (): string[] => readFileSync(deploy('sesame.service'), 'utf8').split('\n');
const CLI = new URL('../../src/cli.js', import.meta.url).pathname;
const notRoot = process.getuid?.() === 0 ? undefined : 'sesame server init gives files to other users only when root runs it';

test('the unit runs the packaged command on the config init writes, and keeps its state where init puts it', () => {
  const unit = unitLines();
  for (const line of [`ExecStartPre=/usr/bin/sesame server -c ${DEFAULT_SERVER_CONFIG} --check`, `ExecStart=/usr/bin/sesame server -c ${DEFAULT_SERVER_CONFIG}`, 'Group=sesame', 'StateDirectoryMode=0700', 'ConfigurationDirectoryMode=0750', 'RuntimeDirectory=sesame', 'RuntimeDirectoryMode=0750']) {
    assert.ok(unit.includes(line), `missing ${line}`);
  }
  assert.equal(DEFAULTS.stateDir, '/var/lib/sesame', 'StateDirectory=sesame is /var/lib/sesame, the state directory init writes by default');
  // /usr/bin/sesame runs the copy in /usr/lib/sesame with the system's Node.js, never a checkout.
  assert.match(readFileSync(deploy('debian/sesame.sh'), 'utf8'), /^exec \/usr\/bin\/node \/usr\/lib\/sesame\/dist\/src\/cli\.js "\$@"$/m);
});

test('sysusers and tmpfiles make the user and the directories with the owners and modes init and the unit use', () => {
  assert.match(readFileSync(deploy('sysusers.conf'), 'utf8'), /^u sesame - .* \/nonexistent \/usr\/sbin\/nologin$/m);
  const tmpfiles = readFileSync(deploy('tmpfiles.conf'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(/\s+/).slice(0, 5).join(' '));
  assert.deepEqual(tmpfiles, ['d /etc/sesame 0750 root sesame', 'd /var/lib/sesame 0700 sesame sesame']);
});

test('the maintainer scripts parse, never start or newly enable the service, and never delete /etc/sesame', () => {
  for (const name of ['postinst', 'prerm', 'postrm', 'sesame.sh']) {
    const text = readFileSync(deploy(`debian/${name}`), 'utf8').split('\n').filter((l) => !/^\s*(#|echo )/.test(l)).join('\n'); // commands, not what they tell the admin
    assert.equal(spawnSync('sh', ['-n', deploy(`debian/${name}`)]).status, 0, `${name} parses`);
    assert.doesNotMatch(text, /systemctl[^\n]*\b(start|restart|enable|try-restart|reload-or-restart)\b|deb-systemd-invoke[^\n]*\b(start|restart)\b/, `${name} starts nothing`);
    assert.doesNotMatch(text, /rm [^\n]*\/etc\/sesame/, `${name} keeps /etc/sesame`);
  }
  // The one enable: an upgrade re-enabling a unit the admin had enabled (debhelper's rule for units it must not enable).
  const postinst = readFileSync(deploy('debian/postinst'), 'utf8');
  assert.ok(postinst.indexOf('debian-installed') < postinst.indexOf('deb-systemd-helper enable'));
});

test('server init for the daemon\'s user: root:USER 0640 config and users, USER 0600 key, USER 0700 state; again: refused', { skip: notRoot }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-init-'));
  try {
    const out = execFileSync(process.execPath, [CLI, 'server', 'init', join(dir, 'etc'), '--state-dir', join(dir, 'state'), '--user', 'nobody'], { encoding: 'utf8' });
    assert.match(out, /for the daemon's user nobody/);
    const nobody = statSync(join(dir, 'state'));
    assert.notEqual(nobody.uid, 0);
    const expect: [string, number, number, number][] = [
      ['etc', 0, nobody.gid, 0o750], ['etc/config.json', 0, nobody.gid, 0o640], ['etc/users.json', 0, nobody.gid, 0o640],
      ['etc/server.key', nobody.uid, nobody.gid, 0o600], ['etc/server.pub', 0, 0, 0o644], ['state', nobody.uid, nobody.gid, 0o700],
    ];
    for (const [name, uid, gid, mode] of expect) {
      const st = statSync(join(dir, name));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [uid, gid, mode], name);
    }
    const config: unknown = JSON.parse(readFileSync(join(dir, 'etc/config.json'), 'utf8'));
    assert.ok(typeof config === 'object' && config !== null && 'stateDir' in config && config.stateDir === join(dir, 'state'), 'an absolute stateDir');
    const again = spawnSync(process.execPath, [CLI, 'server', 'init', join(dir, 'etc'), '--state-dir', join(dir, 'state')], { encoding: 'utf8' });
    assert.equal(again.status, 3);
    assert.match(again.stderr, /already holds a sesame setup/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('server init --user root: everything root-only (0700, 0600), and says to run the daemon as root; an unknown user is refused', { skip: notRoot }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-init-'));
  try {
    const out = execFileSync(process.execPath, [CLI, 'server', 'init', join(dir, 'etc'), '--state-dir', join(dir, 'state'), '--user', 'root'], { encoding: 'utf8' });
    assert.match(out, /runs as root/);
    for (const [name, mode] of [['etc', 0o700], ['etc/config.json', 0o600], ['etc/users.json', 0o600], ['etc/server.key', 0o600], ['etc/server.pub', 0o644], ['state', 0o700]] as const) {
      const st = statSync(join(dir, name));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, 0, mode], name);
    }
    const unknown = spawnSync(process.execPath, [CLI, 'server', 'init', join(dir, 'other'), '--state-dir', join(dir, 'state2'), '--user', 'no-such-user-here'], { encoding: 'utf8' });
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no user "no-such-user-here"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
