// The nft text sesame sends: its table, grant and close transactions, revoked marks, cuts. Every value is rebuilt from a validated type (integers, canonical addresses from bytes, hex key ids) so no other text reaches nft; nothing here runs nft.
import { isPort, isProto } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { addressFromBytes } from '../protocol/address.ts';
import type { ProcessId } from '../process.ts';
import { CEILING, TABLE } from '../limits.ts';
import { MAX_PACKET_BYTES, MIN_PACKET_BYTES, WIRE } from '../protocol/layout.ts';
import type { Grant, GrantTarget, KnockPortGuard, TableSetup } from './firewall.ts';
import { confirmRules, confirmSets } from './nft-confirm.ts';
import type { TokenElement } from './tokens.ts';
import { forwardPathRules } from './nft-forward.ts';

const TABLE_NAME = /^[a-z][a-z0-9_]{0,31}$/;

export function checkTable(name: string): string {
  if (!TABLE_NAME.test(name)) throw new Error(`nftables table name "${name}" must match ${TABLE_NAME}`);
  return name;
}

function accessKey({ proto, port }: Access): string {
  if (!isProto(proto) || !isPort(port)) throw new Error(`invalid access ${String(proto)}/${String(port)}`);
  return `${proto} . ${port}`;
}

/** A 32-bit unsigned integer as nft hex. */
function u32(n: number, what: string): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be a 32-bit unsigned integer, got ${n}`);
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function checkMark(mark: number): string {
  if (mark === 0) throw new RangeError('a connection mark of 0 would mean "not sesame\'s"');
  return u32(mark, 'connection mark');
}

function checkKeyId(hex: string): string {
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new Error(`key id must be 32 lowercase hex digits, got ${JSON.stringify(hex).slice(0, 40)}`);
  return hex;
}

function checkTtl(ttlSeconds: number): number {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > CEILING.durationSeconds) {
    throw new Error(`ttlSeconds must be an integer in 1..${CEILING.durationSeconds}, got ${ttlSeconds}`);
  }
  return ttlSeconds;
}

/** The map and element key for one target, rebuilt from its bytes so no text but a canonical IP reaches nft. */
function elementOf(t: GrantTarget): { readonly map: 'allow4' | 'allow6'; readonly key: string } {
  const address = addressFromBytes(t.address.bytes);
  if (address === undefined || address.family !== t.address.family) throw new Error('grant address is not a 4- or 16-byte IP address');
  return { map: address.family === 4 ? 'allow4' : 'allow6', key: `${address.text} . ${accessKey(t.access)}` };
}

interface Element {
  readonly map: string;
  readonly key: string;
  readonly mark: string;
  /** With a timeout and an owner comment: the grant itself. Without: the element made present so that it can be deleted. */
  readonly grant?: { readonly ttlSeconds: number; readonly keyIdHex: string };
}

/**
 * nft 1.0.6 has no `destroy element`, and `add` may not refresh an existing element's timeout: so each element is
 * added (a no-op if it is there with the same mark), deleted, and added again with its timeout and owner, in one
 * transaction (one line), so the target is never closed in between. `add` fails if the element is there with another
 * mark (another key's grant for the same target); the caller then uses replaceCommand.
 */
function elementCommands(table: string, elements: readonly Element[], present: boolean): string {
  const out: string[] = [];
  for (const map of ['allow4', 'allow6']) {
    const mine = elements.filter((e) => e.map === map);
    if (mine.length === 0) continue;
    const at = `element inet ${table} ${map}`;
    if (!present) out.push(`add ${at} { ${mine.map((e) => `${e.key} : ${e.mark}`).join(', ')} }`);
    out.push(`delete ${at} { ${mine.map((e) => e.key).join(', ')} }`);
    const timed = mine.flatMap((e) => (e.grant === undefined ? [] : [`${e.key} timeout ${e.grant.ttlSeconds}s comment "${e.grant.keyIdHex}" : ${e.mark}`]));
    if (timed.length > 0) out.push(`add ${at} { ${timed.join(', ')} }`);
  }
  return out.join('; ');
}

function grantElements(grants: readonly Grant[]): Element[] {
  const byKey = new Map<string, Element>();
  for (const g of grants) {
    const { map, key } = elementOf(g);
    byKey.delete(key); // the last request for a target wins, as if applied one after another
    byKey.set(key, { map, key, mark: checkMark(g.owner.mark), grant: { ttlSeconds: checkTtl(g.ttlSeconds), keyIdHex: checkKeyId(g.owner.keyIdHex) } });
  }
  return [...byKey.values()];
}

/** One nft line (one transaction) that opens every grant for its ttl, owned by its key; '' for no grants. */
export function grantCommand(table: string, grants: readonly Grant[]): string {
  return elementCommands(checkTable(table), grantElements(grants), false);
}

/** Like grantCommand for targets known to be open (with another owner): delete, then add. */
export function replaceCommand(table: string, grants: readonly Grant[]): string {
  return elementCommands(checkTable(table), grantElements(grants), true);
}

/** One nft line that closes every target, open (with the given mark) or not; '' for none. */
export function closeCommand(table: string, targets: readonly (GrantTarget & { readonly owner: { readonly mark: number } })[]): string {
  const elements = new Map(targets.map((t) => { const { map, key } = elementOf(t); return [key, { map, key, mark: checkMark(t.owner.mark) }] as const; }));
  return elementCommands(checkTable(table), [...elements.values()], false);
}

/** Replaces the revoked marks in one transaction. */
export function revokedMarksCommand(table: string, marks: readonly number[]): string {
  const t = `inet ${checkTable(table)}`;
  const unique = [...new Set(marks.map(checkMark))];
  return [`flush set ${t} revoked`, ...(unique.length > 0 ? [`add element ${t} revoked { ${unique.join(', ')} }`] : [])].join('; ');
}

/** Adds conntrack ids to the cut set: those connections stop passing traffic until conntrack forgets them. */
export function cutCommand(table: string, ctIds: readonly number[]): string {
  const ids = [...new Set(ctIds.map((id) => u32(id, 'conntrack id')))];
  return ids.length === 0 ? '' : `add element inet ${checkTable(table)} cut { ${ids.map((id) => `${id} timeout ${TABLE.admittedTimeoutSeconds}s`).join(', ')} }`;
}

const ownerElement = (p: ProcessId): string => `${u32(p.pid, 'pid')} . ${u32(p.startTicks % 2 ** 32, 'start time')}`;

/** Removes this daemon's claim on the table (at stop). */
export function releaseCommand(table: string, me: ProcessId): string {
  return `delete element inet ${checkTable(table)} owner { ${ownerElement(me)} }`;
}

/** One element per connection that predates the table: peer address . peer port . local port, self-expiring. */
function preexistingElements(t: string, established: TableSetup['established']): string[] {
  const out: string[] = [];
  for (const family of [4, 6] as const) {
    const keys = established.filter((c) => c.remote.family === family).map((c) => {
      const address = addressFromBytes(c.remote.bytes);
      if (address === undefined || address.family !== family || !isPort(c.remotePort) || !isPort(c.localPort)) throw new Error('bad established connection');
      return `${address.text} . ${c.remotePort} . ${c.localPort} timeout ${TABLE.preexistingTimeoutSeconds}s`;
    });
    if (keys.length > 0) out.push(`add element ${t} preexisting${family} { ${[...new Set(keys)].join(', ')} }`);
  }
  return out;
}

/** UDP lengths (8-byte header included) of a version 2 knock. */
const KNOCK_UDP_LENGTH = `${MIN_PACKET_BYTES + 8}-${MAX_PACKET_BYTES + 8}`;
/** "ses" 0x01 as the u32 at UDP payload bytes 0..3; the token is the u32 at bytes 4..7 (@th,96,32). */
const OLD_HEADER = `0x${Buffer.from(WIRE.oldHeader).toString('hex')}`;

/**
 * Rules for the knock port (see KnockPortGuard); integers only, checked here. udp mode, in order: a global trickle of
 * version 1 knocks (so the daemon can log old_version); a knock's length; the slot token, which must be one of @tokens;
 * then the per-source meter, which so only counts packets with a valid token; accept.
 */
function guardRules(t: string, g: KnockPortGuard | undefined): string[] {
  if (g === undefined) return [];
  if (!isPort(g.port)) throw new RangeError(`knock port ${g.port} is not a port`);
  if (g.mode === 'pcap') return [`add rule ${t} input udp dport ${g.port} drop`];
  const rate = Math.ceil(g.perSourcePerSecond);
  const burst = Math.ceil(g.perSourceBurst);
  if (!(Number.isInteger(rate) && rate >= 1 && rate <= TABLE.maxMeterRate && Number.isInteger(burst) && burst >= 1 && burst <= TABLE.maxMeterRate)) throw new RangeError('knock port guard: bad rate or burst');
  const limit = `limit rate over ${rate}/second burst ${burst} packets`;
  const knock = `add rule ${t} input udp dport ${g.port}`;
  return [
    `${knock} @th,64,32 ${OLD_HEADER} limit rate ${TABLE.oldVersionPerSecond}/second burst ${TABLE.oldVersionPerSecond} packets accept`,
    `${knock} udp length != ${KNOCK_UDP_LENGTH} drop`,
    `${knock} @th,96,32 != @tokens drop`,
    `${knock} update @knockers4 { ip saddr ${limit} } drop`,
    `${knock} update @knockers6 { ip6 saddr and ffff:ffff:ffff:ffff:: ${limit} } drop`,
    `${knock} accept`,
  ];
}

/**
 * Replaces the slot tokens in one transaction. Each element times out when its slot stops being acceptable, so a
 * daemon that dies leaves a gate that closes by itself (fail closed).
 */
export function tokensCommand(table: string, tokens: readonly TokenElement[]): string {
  const t = `inet ${checkTable(table)}`;
  const elements = tokens.map((e) => `${u32(e.token, 'token')} timeout ${Math.max(1, Math.ceil(e.ttlMs / 1000))}s`);
  return [`flush set ${t} tokens`, ...(elements.length > 0 ? [`add element ${t} tokens { ${elements.join(', ')} }`] : [])].join('; ');
}

export interface SetupPlan {
  /** Claims of daemons that no longer run, removed in the same transaction. */
  readonly staleOwners: readonly ProcessId[];
  /** The table still has the grant sets of sesame before 0.2 (no owners): they are dropped, with their grants. */
  readonly legacySets: boolean;
  /** This process holds the claim already (a second setup by the same daemon). */
  readonly alreadyOwner: boolean;
}

/**
 * The whole table, declared idempotently so a restart keeps live grants, as one transaction that also claims the
 * table: `create element` fails if another daemon claimed it first, and then nothing of the transaction applies.
 */
export function setupScript(table: string, s: TableSetup, plan: SetupPlan): string {
  const t = `inet ${checkTable(table)}`;
  const ports = [...new Set(s.protectedPorts.map(accessKey))];
  const size = Math.max(1, Math.min(Math.trunc(s.maxGrants), TABLE.maxGrantsCeiling));
  const admitted = `size ${TABLE.admittedSize}; flags dynamic,timeout; timeout ${TABLE.admittedTimeoutSeconds}s;`;
  return [
    `add table ${t}`,
    ...(plan.legacySets ? [`flush chain ${t} input`, `delete set ${t} allow4`, `delete set ${t} allow6`] : []),
    `add set ${t} protected { type inet_proto . inet_service; }`,
    `add map ${t} allow4 { type ipv4_addr . inet_proto . inet_service : mark; flags timeout; size ${size}; }`,
    `add map ${t} allow6 { type ipv6_addr . inet_proto . inet_service : mark; flags timeout; size ${size}; }`,
    `add set ${t} revoked { type mark; }`,
    `add set ${t} cut { typeof ct id; flags timeout; }`,
    `add set ${t} admitted4 { typeof ct id . ip saddr . ct mark; ${admitted} }`,
    `add set ${t} admitted6 { typeof ct id . ip6 saddr . ct mark; ${admitted} }`,
    `add set ${t} owner { type mark . mark; }`,
    `add set ${t} preexisting4 { type ipv4_addr . inet_service . inet_service; flags timeout; }`,
    `add set ${t} preexisting6 { type ipv6_addr . inet_service . inet_service; flags timeout; }`,
    // Per-source packet meters for the knock port: bounded (size) and self-cleaning (timeout).
    `add set ${t} knockers4 { type ipv4_addr; size ${TABLE.meterSize}; flags dynamic,timeout; timeout ${TABLE.meterTimeoutSeconds}s; }`,
    `add set ${t} knockers6 { type ipv6_addr; size ${TABLE.meterSize}; flags dynamic,timeout; timeout ${TABLE.meterTimeoutSeconds}s; }`,
    ...confirmSets(t),
    // The slot tokens valid now (UDP payload bytes 4..7, big-endian), refreshed by the daemon every slot.
    `add set ${t} tokens { typeof @th,96,32; flags timeout; }`,
    `add chain ${t} input { type filter hook input priority -10; policy accept; }`,
    `flush chain ${t} input`,
    ...guardRules(t, s.guard),
    // Local connections are the host's own business: sesame guards the network, not loopback.
    `add rule ${t} input iif "lo" accept`,
    ...confirmRules(t, s.confirmPorts),
    // Connections a revoked key admitted, and connections cut by `sesame grant close`, stop before conntrack lets them through.
    `add rule ${t} input ct mark @revoked meta l4proto . th dport @protected drop`,
    `add rule ${t} input ct id @cut drop`,
    `add rule ${t} input ct state established,related accept`,
    // A new connection through a grant carries its owner's mark (a map miss ends the rule), and is recorded for grant close.
    `add rule ${t} input ct state new ct mark set ip saddr . meta l4proto . th dport map @allow4`,
    `add rule ${t} input ct state new ct mark set ip6 saddr . meta l4proto . th dport map @allow6`,
    `add rule ${t} input ct state new ip saddr . meta l4proto . th dport @allow4 add @admitted4 { ct id . ip saddr . ct mark }`,
    `add rule ${t} input ct state new ip6 saddr . meta l4proto . th dport @allow6 add @admitted6 { ct id . ip6 saddr . ct mark }`,
    `add rule ${t} input ip saddr . meta l4proto . th dport @allow4 accept`,
    `add rule ${t} input ip6 saddr . meta l4proto . th dport @allow6 accept`,
    // A session open before the table existed may be unknown to conntrack (a host without a stateful firewall): admit its exact 4-tuple.
    `add rule ${t} input meta l4proto tcp ip saddr . th sport . th dport @preexisting4 accept`,
    `add rule ${t} input meta l4proto tcp ip6 saddr . th sport . th dport @preexisting6 accept`,
    `add rule ${t} input meta l4proto . th dport @protected drop`,
    `flush set ${t} protected`,
    ...(ports.length > 0 ? [`add element ${t} protected { ${ports.join(', ')} }`] : []),
    ...forwardPathRules(t, [...new Set((s.forwardPorts ?? []).map(accessKey))]),
    revokedMarksCommand(table, s.revokedMarks).replaceAll('; ', '\n'),
    tokensCommand(table, s.guard?.tokens ?? []).replaceAll('; ', '\n'),
    ...preexistingElements(t, s.established),
    ...plan.staleOwners.map((p) => `delete element ${t} owner { ${ownerElement(p)} }`),
    ...(plan.alreadyOwner ? [] : [`create element ${t} owner { ${ownerElement(s.daemon)} }`]),
    '',
  ].join('\n');
}

