// The host's DNAT and redirect rules, read from `nft -j list ruleset` (native nft and iptables-nft alike), to tell which protected ports are forwarded past the input hook; and the warnings for those only checked there. Trusts nothing in the JSON: a match it cannot read counts as covering every port.
import type { Access, Proto } from '../protocol/access.ts';
import { formatAccess } from '../protocol/access.ts';

/** One rule that rewrites the destination of new connections. */
export interface NatRule {
  /** Where it is, as nft names it: "ip nat DOCKER". */
  readonly where: string;
  /** dnat, redirect, or an iptables-nft DNAT/REDIRECT target. */
  readonly action: string;
  /** The protocol its match names; absent: any. */
  readonly proto?: Proto;
  /** Inclusive destination port ranges its match names; absent: any port (no port match, or one that cannot be read). */
  readonly ports?: readonly (readonly [number, number])[];
}

/** A protected port checked on the input path only, and a rule that forwards it past that check. */
export interface Bypass {
  readonly access: Access;
  readonly rule: NatRule;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const PROTOS: Readonly<Record<string, Proto>> = { tcp: 'tcp', udp: 'udp', '6': 'tcp', '17': 'udp' };
/** Hooks whose DNAT only concerns this host's own connections: no client from the network passes there. */
const LOCAL_HOOKS = new Set(['output', 'postrouting', 'input']);
type Range = readonly [number, number];

const port = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65_535 ? v : undefined);

/** A port, a range, or a set of them, as nft -j writes the right side of a match; undefined if it is anything else. */
function rangesOf(v: unknown): Range[] | undefined {
  const single = port(v);
  if (single !== undefined) return [[single, single]];
  if (isRecord(v) && Array.isArray(v['range']) && v['range'].length === 2) {
    const [low, high] = [port(v['range'][0]), port(v['range'][1])];
    return low !== undefined && high !== undefined && low <= high ? [[low, high]] : undefined;
  }
  if (isRecord(v) && Array.isArray(v['set'])) {
    const parts = v['set'].map(rangesOf);
    return parts.every((p) => p !== undefined) ? parts.flat() : undefined;
  }
  return undefined;
}

/** `tcp dport`, `udp dport` or `th dport`: the protocol it implies (undefined for th), or false if it is no dport. */
function dportOf(left: unknown): Proto | undefined | false {
  const p = isRecord(left) && isRecord(left['payload']) ? left['payload'] : undefined;
  if (p === undefined || p['field'] !== 'dport') return false;
  return PROTOS[String(p['protocol'])];
}

/** The NAT action of one statement, if it rewrites destinations; a map keyed by dport also tells the ports. */
function natAction(stmt: Record<string, unknown>): { action: string; mapPorts?: Range[]; mapProto?: Proto } | undefined {
  const xt = isRecord(stmt['xt']) ? stmt['xt'] : undefined;
  if (xt !== undefined) return xt['type'] === 'target' && (xt['name'] === 'DNAT' || xt['name'] === 'REDIRECT') ? { action: String(xt['name']) } : undefined;
  const kind = 'dnat' in stmt ? 'dnat' : 'redirect' in stmt ? 'redirect' : undefined;
  if (kind === undefined) return undefined;
  const body = stmt[kind];
  const map = isRecord(body) && isRecord(body['addr']) && isRecord(body['addr']['map']) ? body['addr']['map'] : undefined;
  const mapProto = map === undefined ? false : dportOf(map['key']);
  if (map === undefined || mapProto === false || !isRecord(map['data']) || !Array.isArray(map['data']['set'])) return { action: kind };
  const keys = map['data']['set'].map((pair: unknown) => (Array.isArray(pair) ? rangesOf(pair[0]) : undefined));
  return keys.every((k) => k !== undefined) ? { action: kind, mapPorts: keys.flat(), ...(mapProto === undefined ? {} : { mapProto }) } : { action: kind };
}

/** The rule's destination rewrite and what its matches narrow it to; undefined if it rewrites no destination. */
function natRuleOf(where: string, expr: readonly unknown[]): NatRule | undefined {
  let proto: Proto | undefined;
  let ports: Range[] | undefined;
  let unreadable = false;
  for (const stmt of expr) {
    if (!isRecord(stmt)) continue;
    const nat = natAction(stmt);
    if (nat !== undefined) {
      const known = unreadable ? undefined : (nat.mapPorts ?? ports);
      const p = nat.mapProto ?? proto;
      return { where, action: nat.action, ...(p === undefined ? {} : { proto: p }), ...(known === undefined ? {} : { ports: known }) };
    }
    if (isRecord(stmt['xt'])) unreadable = true; // an iptables match (multiport, ...): its ports are not in the JSON
    const m = isRecord(stmt['match']) ? stmt['match'] : undefined;
    if (m === undefined) continue;
    const meta = isRecord(m['left']) && isRecord(m['left']['meta']) ? m['left']['meta'] : undefined;
    if (meta?.['key'] === 'l4proto' && m['op'] === '==') proto = PROTOS[String(m['right'])] ?? proto;
    const dport = dportOf(m['left']);
    if (dport === false) continue;
    if (dport !== undefined) proto = dport;
    const r = m['op'] === '==' || m['op'] === 'in' ? rangesOf(m['right']) : undefined;
    if (r === undefined) unreadable = true; // `!=`, a named set: may cover any port
    else ports = r;
  }
  return undefined;
}

/** Every rule in `nft -j list ruleset` output that rewrites the destination of connections from the network. */
export function readNatRules(json: string): NatRule[] {
  const doc: unknown = JSON.parse(json);
  const items = isRecord(doc) && Array.isArray(doc['nftables']) ? doc['nftables'] : [];
  const key = (o: Record<string, unknown>, chain: unknown): string => `${String(o['family'])} ${String(o['table'])} ${String(chain)}`;
  const localChains = new Set<string>();
  for (const item of items) {
    const chain = isRecord(item) && isRecord(item['chain']) ? item['chain'] : undefined;
    if (chain !== undefined && LOCAL_HOOKS.has(String(chain['hook']))) localChains.add(key(chain, chain['name']));
  }
  const rules: NatRule[] = [];
  for (const item of items) {
    const rule = isRecord(item) && isRecord(item['rule']) ? item['rule'] : undefined;
    if (rule === undefined || !Array.isArray(rule['expr'])) continue;
    const where = key(rule, rule['chain']);
    if (localChains.has(where)) continue;
    const nat = natRuleOf(where, rule['expr']);
    if (nat !== undefined) rules.push(nat);
  }
  return rules;
}

export const covers = (rule: NatRule, a: Access): boolean =>
  (rule.proto === undefined || rule.proto === a.proto) && (rule.ports === undefined || rule.ports.some(([low, high]) => low <= a.port && a.port <= high));

/** Protected ports that are not checked before DNAT (path "input") and that a rule rewrites: the first such rule for each. */
export function bypasses(protect: readonly Access[], protectForward: readonly Access[], rules: readonly NatRule[]): Bypass[] {
  const forward = new Set(protectForward.map(formatAccess));
  return protect.filter((a) => !forward.has(formatAccess(a))).flatMap((access) => {
    const rule = rules.find((r) => covers(r, access));
    return rule === undefined ? [] : [{ access, rule }];
  });
}

export function bypassWarning({ access, rule }: Bypass): string {
  const how = rule.ports === undefined ? 'may be DNAT\'d' : 'is DNAT\'d';
  return `${formatAccess(access)} ${how} on this host (${rule.action} in ${rule.where}) but protected on the input path only ("path": "input"): ` +
    'new connections to it are rewritten (to a container, a VM or another port) before the input hook, so that check never sees them; ' +
    'give it "path": "both" to check it before DNAT too';
}
