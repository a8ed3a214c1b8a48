// Step 11 of the packet path, nftables backend: one `inet sesame` table whose set elements (with kernel-enforced timeouts) are the grants, fed through one long-lived `nft -i`. Trusts its typed Address/Access/ttl inputs (re-checked on entry) and reads nft output only for acknowledgements and `nft -j` listings.
import { spawn } from 'node:child_process';
import { isPort, isProto } from '../protocol/access.ts';
import { addressFromBytes } from '../protocol/address.ts';
import type { Firewall, Grant, GrantTarget, KnockPortGuard } from './firewall.ts';
import type { Access } from '../protocol/access.ts';
import { CEILING, NFT, TABLE } from '../limits.ts';
import { NFT_ENV, NftInteractive } from './nft-session.ts';

export interface NftablesOptions {
  /** Name of the `inet` table sesame owns; lowercase letters, digits, underscore. */
  readonly table?: string;
  readonly nftPath?: string;
  /** A command that is not acknowledged in this time kills nft and fails. */
  readonly commandTimeoutMs?: number;
}

export interface AllowedEntry {
  readonly address: string;
  readonly proto: string;
  readonly port: number;
  /** Whole seconds until the kernel drops the element (Infinity if it has no timeout). */
  readonly expiresSeconds: number;
}

const DEFAULT_TABLE = TABLE.defaultName;
const TABLE_NAME = /^[a-z][a-z0-9_]{0,31}$/;

function checkTable(name: string): string {
  if (!TABLE_NAME.test(name)) throw new Error(`nftables table name "${name}" must match ${TABLE_NAME}`);
  return name;
}

function accessKey({ proto, port }: Access): string {
  if (!isProto(proto) || !isPort(port)) throw new Error(`invalid access ${String(proto)}/${String(port)}`);
  return `${proto} . ${port}`;
}

/** The set and element text for one target, rebuilt from its bytes so no text but a canonical IP reaches nft. */
function elementOf(t: GrantTarget): { readonly set: 'allow4' | 'allow6'; readonly key: string } {
  const address = addressFromBytes(t.address.bytes);
  if (address === undefined || address.family !== t.address.family) throw new Error('grant address is not a 4- or 16-byte IP address');
  return { set: address.family === 4 ? 'allow4' : 'allow6', key: `${address.text} . ${accessKey(t.access)}` };
}

function checkTtl(ttlSeconds: number): number {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > CEILING.durationSeconds) {
    throw new Error(`ttlSeconds must be an integer in 1..${CEILING.durationSeconds}, got ${ttlSeconds}`);
  }
  return ttlSeconds;
}

/**
 * `add` then `delete` makes the element absent without failing if it was never there, and a final `add ... timeout`
 * sets a fresh timeout: nft 1.0.6 has no `destroy element`, and `add` alone may not refresh an existing element's timeout.
 * One line is one transaction, so the target is never closed in between.
 */
function setCommands(table: string, entries: ReadonlyMap<string, { set: string; ttlSeconds?: number }>): string {
  const out: string[] = [];
  for (const set of ['allow4', 'allow6']) {
    const keys = [...entries].filter(([, e]) => e.set === set);
    if (keys.length === 0) continue;
    const plain = keys.map(([key]) => key).join(', ');
    out.push(`add element inet ${table} ${set} { ${plain} }`, `delete element inet ${table} ${set} { ${plain} }`);
    const timed = keys.filter(([, e]) => e.ttlSeconds !== undefined).map(([key, e]) => `${key} timeout ${e.ttlSeconds}s`);
    if (timed.length > 0) out.push(`add element inet ${table} ${set} { ${timed.join(', ')} }`);
  }
  return out.join('; ');
}

/** One nft line (one transaction) that opens every grant for its ttl; '' for no grants. */
export function grantCommand(table: string, grants: readonly Grant[]): string {
  const entries = new Map<string, { set: string; ttlSeconds: number }>();
  for (const g of grants) {
    const { set, key } = elementOf(g);
    entries.delete(key); // the last request for a target wins, as if applied one after another
    entries.set(key, { set, ttlSeconds: checkTtl(g.ttlSeconds) });
  }
  return setCommands(checkTable(table), entries);
}

/** One nft line that closes every target, open or not; '' for no targets. */
export function revokeCommand(table: string, targets: readonly GrantTarget[]): string {
  return setCommands(checkTable(table), new Map(targets.map((t) => { const { set, key } = elementOf(t); return [key, { set }] as const; })));
}

/** Rules for the knock port (see KnockPortGuard); integers only, checked here. */
function guardRules(t: string, g: KnockPortGuard | undefined): string[] {
  if (g === undefined) return [];
  if (!isPort(g.port)) throw new RangeError(`knock port ${g.port} is not a port`);
  if (g.mode === 'pcap') return [`add rule ${t} input udp dport ${g.port} drop`];
  const rate = Math.ceil(g.perSourcePerSecond);
  const burst = Math.ceil(g.perSourceBurst);
  if (!(Number.isInteger(rate) && rate >= 1 && rate <= TABLE.maxMeterRate && Number.isInteger(burst) && burst >= 1 && burst <= TABLE.maxMeterRate)) throw new RangeError('knock port guard: bad rate or burst');
  const limit = `limit rate over ${rate}/second burst ${burst} packets`;
  return [
    `add rule ${t} input udp dport ${g.port} update @knockers4 { ip saddr ${limit} } drop`,
    `add rule ${t} input udp dport ${g.port} update @knockers6 { ip6 saddr and ffff:ffff:ffff:ffff:: ${limit} } drop`,
  ];
}

/** The whole table except allow4/allow6 contents, declared idempotently so a restart keeps live grants. */
export function setupScript(table: string, protectedPorts: readonly Access[], guard?: KnockPortGuard): string {
  const t = `inet ${checkTable(table)}`;
  const ports = [...new Set(protectedPorts.map(accessKey))];
  return [
    `add table ${t}`,
    `add set ${t} protected { type inet_proto . inet_service; }`,
    `add set ${t} allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }`,
    `add set ${t} allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }`,
    // Per-source packet meters for the knock port: bounded (size) and self-cleaning (timeout).
    `add set ${t} knockers4 { type ipv4_addr; size ${TABLE.meterSize}; flags dynamic,timeout; timeout ${TABLE.meterTimeoutSeconds}s; }`,
    `add set ${t} knockers6 { type ipv6_addr; size ${TABLE.meterSize}; flags dynamic,timeout; timeout ${TABLE.meterTimeoutSeconds}s; }`,
    `add chain ${t} input { type filter hook input priority -10; policy accept; }`,
    `flush chain ${t} input`,
    ...guardRules(t, guard),
    `add rule ${t} input ct state established,related accept`,
    `add rule ${t} input ip saddr . meta l4proto . th dport @allow4 accept`,
    `add rule ${t} input ip6 saddr . meta l4proto . th dport @allow6 accept`,
    `add rule ${t} input meta l4proto . th dport @protected drop`,
    `flush set ${t} protected`,
    ...(ports.length > 0 ? [`add element ${t} protected { ${ports.join(', ')} }`] : []),
    '',
  ].join('\n');
}

/** The Firewall for nftables. Each instance owns one long-lived nft process, started on first use. */
export class NftablesFirewall implements Firewall {
  readonly table: string;
  readonly #nftPath: string;
  readonly #nft: NftInteractive;

  constructor(options: NftablesOptions = {}) {
    this.table = checkTable(options.table ?? DEFAULT_TABLE);
    this.#nftPath = options.nftPath ?? 'nft';
    this.#nft = new NftInteractive(this.#nftPath, options.commandTimeoutMs ?? NFT.commandTimeoutMs);
  }

  async setup(protectedPorts: readonly Access[], guard?: KnockPortGuard): Promise<void> {
    await runNft(this.#nftPath, ['-f', '-'], setupScript(this.table, protectedPorts, guard));
    this.#nft.warm();
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    const line = grantCommand(this.table, grants);
    if (line !== '') await this.#nft.run(line);
  }

  async revoke(targets: readonly GrantTarget[]): Promise<void> {
    const line = revokeCommand(this.table, targets);
    if (line !== '') await this.#nft.run(line);
  }

  close(): Promise<void> {
    return this.#nft.close();
  }
}

interface NftOutput { readonly stdout: string; readonly stderr: string }

/** One nft invocation with an argument array (never a shell); rejects with nft's message on a non-zero exit. */
function runNft(nftPath: string, args: readonly string[], input?: string): Promise<NftOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(nftPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: NFT_ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`nft ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** Deletes sesame's table and every grant in it; succeeds if it is already gone (`sesame server --cleanup`). */
export async function cleanup(table: string = DEFAULT_TABLE, nftPath = 'nft'): Promise<void> {
  const t = `inet ${checkTable(table)}`;
  await runNft(nftPath, ['-f', '-'], `add table ${t}\ndelete table ${t}\n`);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const PROTO_NUMBERS: Readonly<Record<string, string>> = { '6': 'tcp', '17': 'udp' };

function entryFrom(raw: unknown): AllowedEntry | undefined {
  // Elements with a timeout are wrapped as {elem: {val, timeout, expires}}; plain ones are the value itself.
  const wrapped = isRecord(raw) && isRecord(raw['elem']) ? raw['elem'] : undefined;
  const val = wrapped === undefined ? raw : wrapped['val'];
  const parts = isRecord(val) ? val['concat'] : undefined;
  if (!Array.isArray(parts) || parts.length !== 3) return undefined;
  const [address, proto, port]: unknown[] = parts;
  const expires = wrapped?.['expires'];
  if (typeof address !== 'string' || (typeof proto !== 'string' && typeof proto !== 'number')) return undefined;
  const portNumber = Number(port);
  if (!isPort(portNumber)) return undefined;
  return { address, proto: PROTO_NUMBERS[String(proto)] ?? String(proto), port: portNumber, expiresSeconds: typeof expires === 'number' ? expires : Infinity };
}

/** The live grants in sesame's table, read with `nft -j` (for tests and a status view). */
export async function listAllowed(table: string = DEFAULT_TABLE, nftPath = 'nft'): Promise<AllowedEntry[]> {
  const out: AllowedEntry[] = [];
  for (const set of ['allow4', 'allow6']) {
    const { stdout } = await runNft(nftPath, ['-j', 'list', 'set', 'inet', checkTable(table), set]);
    const doc: unknown = JSON.parse(stdout);
    const items = isRecord(doc) && Array.isArray(doc['nftables']) ? doc['nftables'] : [];
    for (const item of items) {
      const s = isRecord(item) && isRecord(item['set']) ? item['set'] : undefined;
      const elems = s !== undefined && Array.isArray(s['elem']) ? s['elem'] : [];
      for (const e of elems) {
        const entry = entryFrom(e);
        if (entry === undefined) throw new Error(`unexpected element in nft -j output: ${JSON.stringify(e)}`);
        out.push(entry);
      }
    }
  }
  return out;
}
