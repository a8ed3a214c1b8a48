// dnat.ts: reading DNAT and redirect rules from nft -j (iptables-nft's and native ones), and which protected ports they take past an input-only check.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bypasses, bypassWarning, covers, readNatRules } from '../../src/server/dnat.ts';

/**
 * `nft -j list ruleset` (nftables 1.0.6) of a namespace with Docker's rules made by iptables-nft (DNAT of tcp/8080, a multiport
 * range, udp/5000; a REDIRECT; an ip6tables DNAT) and native ones (redirect, a `!=` match, a dport map, and an output-hook DNAT
 * that concerns only local connections); filter chains and handles left out.
 */
const RULESET = `{"nftables": [{"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}, {"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"counter": {"packets": 6, "bytes": 360}}, {"xt": {"type": "target", "name": "DNAT"}}]}}, {"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"xt": {"type": "match", "name": "multiport"}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "DNAT"}}]}}, {"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 5000}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "DNAT"}}]}}, {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 2222}}, {"counter": {"packets": 1, "bytes": 60}}, {"xt": {"type": "target", "name": "REDIRECT"}}]}}, {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "expr": [{"xt": {"type": "match", "name": "addrtype"}}, {"counter": {"packets": 6, "bytes": 360}}, {"jump": {"target": "DOCKER"}}]}}, {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"chain": {"family": "ip6", "table": "nat", "name": "PREROUTING", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}, {"rule": {"family": "ip6", "table": "nat", "chain": "PREROUTING", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6000}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "DNAT"}}]}}, {"chain": {"family": "inet", "table": "sesame", "name": "input", "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}}, {"chain": {"family": "inet", "table": "sesame", "name": "prerouting", "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"chain": {"family": "inet", "table": "i6", "name": "pre", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}, {"chain": {"family": "inet", "table": "i6", "name": "out", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}, {"rule": {"family": "inet", "table": "i6", "chain": "pre", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 5353}}, {"redirect": {"port": 53}}]}}, {"rule": {"family": "inet", "table": "i6", "chain": "pre", "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"dnat": {"family": "ip", "addr": "10.91.2.2"}}]}}, {"rule": {"family": "inet", "table": "i6", "chain": "pre", "expr": [{"dnat": {"family": "ip", "addr": {"map": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": {"set": [[7100, {"concat": ["10.91.2.2", 80]}], [{"range": [7200, 7210]}, {"concat": ["10.91.2.2", 81]}]]}}}}}]}}, {"rule": {"family": "inet", "table": "i6", "chain": "out", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 4444}}, {"dnat": {"family": "ip", "addr": "10.91.2.2"}}]}}]}`;

const tcp = (port: number) => ({ proto: 'tcp', port }) as const;
const udp = (port: number) => ({ proto: 'udp', port }) as const;

test('reads every destination rewrite of connections from the network, and what its match narrows it to', () => {
  assert.deepEqual(readNatRules(RULESET), [
    { where: 'ip nat DOCKER', action: 'DNAT', proto: 'tcp', ports: [[8080, 8080]] },
    { where: 'ip nat DOCKER', action: 'DNAT', proto: 'tcp' }, // -m multiport: its ports are not in the JSON, so any
    { where: 'ip nat DOCKER', action: 'DNAT', proto: 'udp', ports: [[5000, 5000]] },
    { where: 'ip nat PREROUTING', action: 'REDIRECT', proto: 'tcp', ports: [[2222, 2222]] },
    { where: 'ip6 nat PREROUTING', action: 'DNAT', proto: 'tcp', ports: [[6000, 6000]] },
    { where: 'inet i6 pre', action: 'redirect', proto: 'udp', ports: [[5353, 5353]] },
    { where: 'inet i6 pre', action: 'dnat', proto: 'tcp' }, // tcp dport != 22: any other port
    { where: 'inet i6 pre', action: 'dnat', proto: 'tcp', ports: [[7100, 7100], [7200, 7210]] },
  ]);
});

test('coverage: protocol and port ranges; a rule without a readable port match covers every port of its protocol', () => {
  const [docker, multiport, , , , , , map] = readNatRules(RULESET);
  assert.ok(docker !== undefined && multiport !== undefined && map !== undefined);
  assert.equal(covers(docker, tcp(8080)), true);
  assert.equal(covers(docker, tcp(8081)), false);
  assert.equal(covers(docker, udp(8080)), false);
  assert.equal(covers(multiport, tcp(1)), true);
  assert.equal(covers(map, tcp(7205)), true);
  assert.equal(covers(map, tcp(7211)), false);
});

test('only input-only protected ports that a rule rewrites are bypasses; a port checked before DNAT is none', () => {
  const rules = readNatRules(RULESET).filter((r) => r.ports !== undefined);
  const found = bypasses([tcp(8080), tcp(22), udp(5000), tcp(6000)], [udp(5000)], rules);
  assert.deepEqual(found.map((b) => [b.access.port, b.rule.where]), [[8080, 'ip nat DOCKER'], [6000, 'ip6 nat PREROUTING']]);
  assert.match(bypassWarning(found[0] ?? assert.fail()), /^tcp\/8080 is DNAT'd on this host \(DNAT in ip nat DOCKER\) but protected on the input path only \("path": "input"\).*"path": "both"/);
  assert.deepEqual(bypasses([tcp(4444)], [], readNatRules(RULESET)).map((b) => b.rule.action), ['DNAT'], 'the output-hook rule is not one (the multiport rule is)');
  assert.match(bypassWarning(bypasses([tcp(4444)], [], readNatRules(RULESET))[0] ?? assert.fail()), /may be DNAT'd/);
});

test('no NAT rules, an empty ruleset, or junk where a match should be: nothing, or "any port", never a crash', () => {
  assert.deepEqual(readNatRules('{"nftables": [{"metainfo": {"version": "1.0.6"}}]}'), []);
  assert.deepEqual(readNatRules('{}'), []);
  const junk = JSON.stringify({ nftables: [{ rule: { family: 'ip', table: 'nat', chain: 'X', expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: { weird: 1 } } }, { dnat: { addr: '10.0.0.1' } }] } }] });
  assert.deepEqual(readNatRules(junk), [{ where: 'ip nat X', action: 'dnat', proto: 'tcp' }]);
});
