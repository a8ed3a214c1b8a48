// A real etcd cluster for the tests: three members (or as many as asked, optionally with TLS and client certificates) in their own sesame-* namespace, one loopback address each, reached from server namespaces over one veth each (a link that a test can cut); data in a temporary directory; members killed and everything removed on destroy and on any exit. Trusts the test code that calls it.
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { addAddress, addNamespace, addRoute, execIn, link, setLink, spawnIn, stopChild } from './netns.ts';
import type { ExecResult } from './netns.ts';
import { destroyNamespace, removeAtExit, subnetsFor } from './topology.ts';

export interface EtcdCluster {
  readonly ns: string;
  /** Client URLs, http://10.A.B.20N:2379. */
  readonly endpoints: readonly string[];
  /** Joins a server namespace to the cluster's network (link i, 1-based). */
  attach(serverNs: string, i: number): Promise<void>;
  /** Cuts (down) or restores (up) link i, as a network fault would. */
  cut(i: number, state: 'up' | 'down'): Promise<void>;
  /** Kills every member (the whole cluster is gone) / starts them again on the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** etcdctl (v3 API) against the cluster, run inside its namespace. */
  etcdctl(args: readonly string[], input?: string): Promise<ExecResult>;
  destroy(): Promise<void>;
}

/** Why etcd tests cannot run here, or undefined; CI must have etcd (apt-get install etcd-server etcd-client). */
export function etcdMissing(): string | undefined {
  for (const tool of ['etcd', 'etcdctl']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error !== undefined) {
      const why = `\`${tool}\` is missing: apt-get install etcd-server etcd-client`;
      if (process.env['CI'] !== undefined && process.env['CI'] !== '') throw new Error(`CI must run the etcd tests, but ${why}`);
      return why;
    }
  }
  return undefined;
}

/** PEM files: the CA, and a certificate (serverAuth and clientAuth, the members' addresses as IP SANs) that members and etcdctl use. */
export interface EtcdTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** The members' addresses for a tag, known before the cluster starts (for certificates). */
export function etcdHosts(tag: string, size = 3): string[] {
  const net = subnetsFor(`${tag}-etcd`).v4;
  return Array.from({ length: size }, (_, j) => `${net}.${201 + j}`);
}

/** With tls, clients must present a certificate the CA signed (--client-cert-auth), and URLs are https. */
export async function startEtcdCluster(tag: string, size = 3, tls?: EtcdTls): Promise<EtcdCluster> {
  const ns = `sesame-${tag}-etcd`;
  const net = subnetsFor(`${tag}-etcd`).v4;
  const ids = Array.from({ length: size }, (_, j) => j + 1);
  const host = (j: number): string => `${net}.${200 + j}`;
  const scheme = tls === undefined ? 'http' : 'https';
  const endpoints = ids.map((j) => `${scheme}://${host(j)}:2379`);
  const cluster = ids.map((j) => `m${j}=http://${host(j)}:2380`).join(',');
  const tlsFlags = tls === undefined ? [] : ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'];
  const ctlTls = tls === undefined ? [] : [`--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`];
  const data = mkdtempSync(join(tmpdir(), 'sesame-etcd-'));
  removeAtExit(ns);
  process.once('exit', () => rmSync(data, { recursive: true, force: true }));
  let members: ChildProcess[] = [];
  const output: string[] = [];
  const ctl = (args: readonly string[], input?: string): Promise<ExecResult> => execIn(ns, ['etcdctl', `--endpoints=${endpoints.join(',')}`, '--command-timeout=3s', ...ctlTls, ...args], input === undefined ? {} : { input });

  const start = async (): Promise<void> => {
    members = ids.map((j) => {
      const child = spawnIn(ns, ['etcd', '--name', `m${j}`, '--data-dir', join(data, `m${j}`),
        '--listen-client-urls', `${scheme}://${host(j)}:2379`, '--advertise-client-urls', `${scheme}://${host(j)}:2379`, ...tlsFlags,
        '--listen-peer-urls', `http://${host(j)}:2380`, '--initial-advertise-peer-urls', `http://${host(j)}:2380`,
        '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `sesame-${tag}`,
        // Loopback: short heartbeats and elections, so a (re)started cluster has a leader in well under a second.
        '--heartbeat-interval', '50', '--election-timeout', '500', '--logger', 'zap', '--log-level', 'error']);
      const keep = (b: Buffer): void => {
        output.push(b.toString());
        if (output.length > 50) output.shift();
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      return child;
    });
    const until = Date.now() + 30_000;
    for (;;) {
      const r = await ctl(['endpoint', 'health']);
      if (r.code === 0) return;
      if (Date.now() > until) throw new Error(`etcd cluster not healthy after 30 s: ${r.stderr.trim()}; etcd said: ${output.join('').slice(-2000)}`);
      await sleep(200);
    }
  };
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((m) => stopChild(m)));
    members = [];
  };

  try {
    await addNamespace(ns);
    for (const j of ids) await addAddress(ns, 'lo', `${host(j)}/32`);
    await start();
  } catch (err) {
    await stop();
    destroyNamespace(ns);
    rmSync(data, { recursive: true, force: true });
    throw err;
  }
  return {
    ns,
    endpoints,
    async attach(serverNs, i) {
      await link({ ns: serverNs, dev: 'etcd0', cidrs: [`${net}.${4 * i + 1}/30`] }, { ns, dev: `s${i}`, cidrs: [`${net}.${4 * i + 2}/30`] });
      await addRoute(serverNs, `${net}.200/29`, `${net}.${4 * i + 2}`);
    },
    cut: (i, state) => setLink(ns, `s${i}`, state),
    stop,
    start,
    etcdctl: ctl,
    async destroy() {
      await stop();
      destroyNamespace(ns);
      rmSync(data, { recursive: true, force: true });
    },
  };
}
