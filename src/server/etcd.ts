// The etcd v3 client (the etcd3 package) as sesame sets it up for the daemon and for `sesame user`: endpoints, TLS with client certificates and/or user and password, a deadline on every unary call, and a failed host tried again after a second rather than five. Input: the validated config; the PEM and password files are operator files.
import type { IBackoff } from 'cockatiel';
import type { Etcd3, IOptions } from 'etcd3';
import { EXIT, OperatorError } from '../errors.ts';
import { readNoFollow, readText } from '../files.ts';
import { ETCD } from '../limits.ts';
import type { EtcdSource } from './config.ts';

export type { Etcd3, Watcher } from 'etcd3';

/** The one key under the prefix that holds the signed users document. */
export const usersKey = (e: EtcdSource): string => `${e.prefix}users`;

/** A secret the etcd client needs (client key, password): refused if others can read it, like a private key. */
function readSecretFile(path: string, what: string): string {
  const { text, mode } = readNoFollow(path, what, EXIT.config);
  if ((mode & 0o077) !== 0) throw new OperatorError(`${what} ${path} is readable by others (mode 0${(mode & 0o777).toString(8)}); chmod 600 ${path}`, EXIT.config);
  return text;
}

const unary = (): { deadline: number } => ({ deadline: Date.now() + ETCD.callTimeoutMs });

/** Doubling delays up to the cap (the watch stream's reconnects). */
const backoff = (ms: number): IBackoff<unknown> => ({ duration: ms, next: () => backoff(Math.min(ms * 2, ETCD.watchBackoffMaxMs)) });

/** What the client authenticates with, read from the operator's files (at start: a bad file is an operator error, not an outage). */
export interface EtcdCredentials {
  readonly credentials: IOptions['credentials'];
  readonly auth: IOptions['auth'];
}

export function readEtcdCredentials(e: EtcdSource): EtcdCredentials {
  const tls = e.tls;
  const credentials = tls === undefined ? undefined : {
    rootCertificate: Buffer.from(readText(tls.ca, 'etcd CA certificate', EXIT.config)),
    ...(tls.cert === undefined || tls.key === undefined ? {} : { certChain: Buffer.from(readText(tls.cert, 'etcd client certificate', EXIT.config)), privateKey: Buffer.from(readSecretFile(tls.key, 'etcd client key')) }),
  };
  const auth = e.auth === undefined ? undefined : { username: e.auth.user, password: (readSecretFile(e.auth.passwordFile, 'etcd password file').split('\n')[0] ?? '').trim(), callOptions: unary };
  return { credentials, auth };
}

/** The client, its library loaded on first use: it takes a second to load (gRPC, protobuf), which a users-file setup never pays. */
export async function etcdClient(e: EtcdSource, c: EtcdCredentials): Promise<Etcd3> {
  const [{ Etcd3: Client, isRecoverableError }, { circuitBreaker, ConsecutiveBreaker, handleWhen, retry }] = await Promise.all([import('etcd3'), import('cockatiel')]);
  return new Client({
    hosts: [...e.endpoints],
    ...(c.credentials === undefined ? {} : { credentials: c.credentials }),
    ...(c.auth === undefined ? {} : { auth: c.auth }),
    dialTimeout: ETCD.callTimeoutMs,
    // The watch is a stream and must stay open; every other call has a deadline, so a cut link shows as an error, not a hang.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : unary()),
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: ETCD.retryHostAfterMs, breaker: new ConsecutiveBreaker(ETCD.hostFailuresBeforeSkip) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: e.endpoints.length }),
      watchBackoff: backoff(ETCD.watchBackoffMs),
    },
  });
}
