// The tests' network: a server and a client namespace on one veth (netns.ts createPair), with fixed IPv4 and ULA IPv6 addresses derived from a tag, removed on destroy and on any exit; and whether this machine can run such tests at all. Trusts the test code that calls it.
import { createHash } from 'node:crypto';
import { createBehind, createPair, missingTool, removeNamespace } from './netns.ts';

export interface Topology {
  readonly server: { readonly ns: string; readonly v4: string; readonly v6: string };
  /** v4b/v6b: a second address on the same client interface, to knock or connect "from somewhere else". */
  readonly client: { readonly ns: string; readonly v4: string; readonly v6: string; readonly v4b: string; readonly v6b: string };
  destroy(): Promise<void>;
}

/** A topology with a third namespace, sesame-TAG-ctr, behind the server (a container or VM), reached only through the server. */
export interface ForwardTopology extends Topology {
  readonly container: { readonly ns: string; readonly v4: string; readonly v6: string };
}

/** Namespaces created by createTopology and not yet destroyed: removed on exit, SIGINT and SIGTERM. */
const created = new Set<string>();
let hooked = false;

/** Why the namespace tests cannot run here (for `{ skip }`), or undefined. In CI a missing requirement is an error, never a silent skip. */
export function skipReason(): string | undefined {
  const reason = missingRequirement();
  if (reason !== undefined && process.env['CI'] !== undefined && process.env['CI'] !== '') {
    throw new Error(`CI must run the namespace tests, but ${reason}`);
  }
  return reason;
}


function missingRequirement(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and nftables)';
  return missingTool();
}

function forget(ns: string): void {
  removeNamespace(ns);
  created.delete(ns);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const all = (): void => { for (const ns of [...created]) forget(ns); };
  process.on('exit', all);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => { all(); process.exit(code); });
  }
}

/** Registers a namespace made elsewhere (the etcd harness) for removal on exit, SIGINT and SIGTERM. */
export function removeAtExit(ns: string): void {
  hookExit();
  created.add(ns);
}

/** Removes a namespace registered with removeAtExit (or made by createTopology) now. */
export const destroyNamespace = forget;

/** Distinct subnets per tag: 10.<a>.<b>.0/24 and fd00:5e5a:<n>::/64 from a hash of the tag. */
export function subnetsFor(tag: string): { v4: string; v6: string } {
  const h = createHash('sha256').update(tag).digest();
  const a = h[0] ?? 0;
  const b = h[1] ?? 0;
  return { v4: `10.${a}.${b}`, v6: `fd00:5e5a:${((a << 8) | b).toString(16)}` };
}

/** Namespaces sesame-TAG-srv (.1, ::1) and sesame-TAG-cli (.2 and .3, ::2 and ::3) on veth-srv/veth-cli; stale ones of the same names are replaced. */
export async function createTopology(tag: string): Promise<Topology> {
  if (!/^[a-z0-9]{1,12}$/.test(tag)) throw new Error(`topology tag "${tag}" must be 1-12 lowercase letters or digits`);
  const srv = `sesame-${tag}-srv`;
  const cli = `sesame-${tag}-cli`;
  const net = subnetsFor(tag);
  hookExit();
  // Registered before they exist, so an exit halfway through creating them still removes them.
  created.add(srv);
  created.add(cli);
  try {
    await createPair(
      { ns: srv, dev: 'veth-srv', cidrs: [`${net.v4}.1/24`, `${net.v6}::1/64`] },
      // .3 is secondary, so IPv4 never picks it as a source unless a socket binds to it; IPv6 gets that from ::3 being deprecated.
      { ns: cli, dev: 'veth-cli', cidrs: [`${net.v4}.2/24`, `${net.v4}.3/24`, `${net.v6}::2/64`], deprecatedCidrs: [`${net.v6}::3/64`] },
    );
  } catch (err) {
    forget(srv);
    forget(cli);
    throw err;
  }
  return {
    server: { ns: srv, v4: `${net.v4}.1`, v6: `${net.v6}::1` },
    client: { ns: cli, v4: `${net.v4}.2`, v6: `${net.v6}::2`, v4b: `${net.v4}.3`, v6b: `${net.v6}::3` },
    destroy: async () => { forget(srv); forget(cli); },
  };
}

/** createTopology plus sesame-TAG-ctr on the server's veth-ctr (.1 and ::1 on the server side, .2 and ::2 in the container), in subnets of its own. */
export async function createForwardTopology(tag: string): Promise<ForwardTopology> {
  const topo = await createTopology(tag);
  const ctr = `sesame-${tag}-ctr`;
  const net = subnetsFor(`${tag}/ctr`);
  created.add(ctr);
  try {
    await createBehind(
      { ns: topo.server.ns, dev: 'veth-ctr', cidrs: [`${net.v4}.1/24`, `${net.v6}::1/64`] },
      { ns: ctr, dev: 'veth-srv', cidrs: [`${net.v4}.2/24`, `${net.v6}::2/64`] },
      [`${net.v4}.1`, `${net.v6}::1`],
    );
  } catch (err) {
    forget(ctr);
    await topo.destroy();
    throw err;
  }
  return { ...topo, container: { ns: ctr, v4: `${net.v4}.2`, v6: `${net.v6}::2` }, destroy: async () => { forget(ctr); await topo.destroy(); } };
}
