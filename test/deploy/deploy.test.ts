// deploy/: the example config and users files load with the same schemas and parsers the daemon uses; the unit keeps its hardening.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
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
