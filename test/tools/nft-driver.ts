// Test driver: runs the nftables backend inside a network namespace and answers JSON-line requests on stdin. Trusts its stdin: it is the test that spawned it.
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { errorMessage } from '../../src/errors.ts';
import type { Access } from '../../src/protocol/access.ts';
import { parseAddress } from '../../src/protocol/address.ts';
import { self, startTicksOf } from '../../src/process.ts';
import type { Grant, LiveGrant } from '../../src/server/firewall.ts';
import { NftablesFirewall, cleanup } from '../../src/server/nftables.ts';

export interface WireTarget { readonly address: string; readonly proto: 'tcp' | 'udp'; readonly port: number; readonly mark?: number }
export interface WireGrant extends WireTarget { readonly ttlSeconds: number; readonly keyIdHex?: string }
/** A live grant as the test sees it. */
export interface WireEntry { readonly address: string; readonly proto: string; readonly port: number; readonly expiresSeconds: number; readonly keyIdHex: string; readonly mark: number }

/** The owner of grants that name none. */
export const DEFAULT_OWNER = { keyIdHex: '0123456789abcdef0123456789abcdef', mark: 0x80000001 } as const;

export type DriverRequest =
  /** Claims the table for this driver process, or (asPid) for another running process, as a second daemon would find it. */
  | { readonly op: 'setup'; readonly table?: string; readonly ports: readonly Access[]; readonly maxGrants?: number; readonly revokedMarks?: readonly number[]; readonly asPid?: number }
  | { readonly op: 'grant'; readonly table?: string; readonly grants: readonly WireGrant[] }
  /** Each grant as its own concurrent grant() call, to exercise batching; answers 'ok' or 'rejected: ...' for each. */
  | { readonly op: 'grantConcurrently'; readonly table?: string; readonly grants: readonly WireGrant[] }
  | { readonly op: 'close'; readonly table?: string; readonly targets: readonly WireTarget[] }
  | { readonly op: 'list'; readonly table?: string }
  | { readonly op: 'revokedMarks'; readonly table?: string; readonly marks: readonly number[] }
  /** Cuts the admitted connections from one source address; answers how many. */
  | { readonly op: 'cut'; readonly table?: string; readonly source: string }
  /** Replaces the knock port's slot tokens; answers nothing. */
  | { readonly op: 'tokens'; readonly table?: string; readonly tokens: readonly { readonly token: number; readonly ttlMs: number }[] }
  | { readonly op: 'cleanup'; readonly table?: string }
  /** SIGKILLs the backend's nft, then grants twice at once: the first is in flight on the dead process. */
  | { readonly op: 'killNftThenGrant'; readonly table?: string; readonly grant: WireGrant }
  | { readonly op: 'bench'; readonly table?: string; readonly count: number }
  | { readonly op: 'stop' };

export type DriverResponse = { readonly id: number; readonly ok: true; readonly value: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

const firewalls = new Map<string, NftablesFirewall>();
const firewall = (table = 'sesame'): NftablesFirewall => {
  const existing = firewalls.get(table);
  if (existing !== undefined) return existing;
  const created = new NftablesFirewall({ table });
  firewalls.set(table, created);
  return created;
};

function target(w: WireTarget): LiveGrant {
  const address = parseAddress(w.address);
  if (address === undefined) throw new Error(`bad address ${w.address}`);
  return { address, access: { proto: w.proto, port: w.port }, owner: { keyIdHex: DEFAULT_OWNER.keyIdHex, mark: w.mark ?? DEFAULT_OWNER.mark }, expiresInSeconds: 0 };
}

const grantOf = (w: WireGrant): Grant => ({ ...target(w), ttlSeconds: w.ttlSeconds, owner: { keyIdHex: w.keyIdHex ?? DEFAULT_OWNER.keyIdHex, mark: w.mark ?? DEFAULT_OWNER.mark } });

const wireOf = (g: LiveGrant): WireEntry => ({ address: g.address.text, proto: g.access.proto, port: g.access.port, expiresSeconds: g.expiresInSeconds, keyIdHex: g.owner.keyIdHex, mark: g.owner.mark });

/** nft processes this driver started (the backend's `nft -i`), found through /proc. */
function nftChildren(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    for (const pid of readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ').filter((p) => p !== '')) {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'nft') pids.push(Number(pid));
    }
  }
  return pids;
}

async function settle(p: Promise<void>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return `rejected: ${errorMessage(e)}`;
  }
}

async function handle(req: DriverRequest): Promise<unknown> {
  switch (req.op) {
    case 'setup': {
      const daemon = req.asPid === undefined ? self() : { pid: req.asPid, startTicks: startTicksOf(req.asPid) ?? 0 };
      return firewall(req.table).setup({ protectedPorts: req.ports, maxGrants: req.maxGrants ?? 1000, revokedMarks: req.revokedMarks ?? [], daemon, established: [] });
    }
    case 'grant':
      return firewall(req.table).grant(req.grants.map(grantOf));
    case 'grantConcurrently':
      return Promise.all(req.grants.map((g) => settle(firewall(req.table).grant([grantOf(g)]))));
    case 'close':
      return firewall(req.table).close(req.targets.map(target));
    case 'list':
      return (await firewall(req.table).list()).map(wireOf);
    case 'revokedMarks':
      return firewall(req.table).setRevokedMarks(req.marks);
    case 'cut':
      return firewall(req.table).cut((c) => c.source.text === req.source);
    case 'tokens':
      return firewall(req.table).setTokens(req.tokens);
    case 'cleanup':
      return cleanup(req.table);
    case 'killNftThenGrant': {
      const fw = firewall(req.table);
      const killed = nftChildren();
      for (const pid of killed) process.kill(pid, 'SIGKILL');
      const first = settle(fw.grant([grantOf(req.grant)]));
      const second = settle(fw.grant([grantOf(req.grant)]));
      return { killed: killed.length, first: await first, second: await second };
    }
    case 'bench': {
      const fw = firewall(req.table);
      const ms: number[] = [];
      for (let i = 0; i < req.count; i++) {
        const g = grantOf({ address: `10.250.${i >> 8}.${i & 255}`, proto: 'tcp', port: 9, ttlSeconds: 5 });
        const start = performance.now();
        await fw.grant([g]);
        ms.push(performance.now() - start);
      }
      ms.sort((a, b) => a - b);
      return { medianMs: ms[ms.length >> 1], p90Ms: ms[Math.floor(ms.length * 0.9)], maxMs: ms.at(-1) };
    }
    case 'stop':
      await Promise.all([...firewalls.values()].map((fw) => fw.stop()));
      firewalls.clear();
      return undefined;
  }
}

const lines = createInterface({ input: process.stdin });
// The test went away: release the nft processes so this driver can exit.
lines.on('close', () => void handle({ op: 'stop' }).finally(() => process.exit(0)));
lines.on('line', (line) => {
  const { id, req } = JSON.parse(line) as { id: number; req: DriverRequest };
  handle(req).then(
    (value) => process.stdout.write(`${JSON.stringify({ id, ok: true, value: value ?? null } satisfies DriverResponse)}\n`),
    (e: unknown) => process.stdout.write(`${JSON.stringify({ id, ok: false, error: errorMessage(e) } satisfies DriverResponse)}\n`),
  );
});
