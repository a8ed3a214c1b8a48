// The packet path, top to bottom: the one place that says in which order the checks run. Each numbered step is one call, into the file named beside it (README.md, "Checks, in order"). Input: raw untrusted bytes and the source address the capture saw.
import { errnoCode, errorMessage } from '../errors.ts';
import { formatAccess } from '../protocol/access.ts';
import { rateKey } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import { toHex } from '../protocol/bytes.ts';
import { fingerprint } from '../protocol/keys.ts';
import type { ServerKeys } from '../protocol/keys.ts';
import { decodePayload } from '../protocol/parse.ts';
import { DROP } from '../protocol/reasons.ts';
import { formatRange, inRange } from '../port-range.ts';
import type { PortRange } from '../port-range.ts';
import type { DropReason } from '../protocol/reasons.ts';
import { GrantBookFullError, ownerOf } from './firewall.ts';
import type { Firewall, Grant } from './firewall.ts';
import { checkFreshness } from './freshness.ts';
import type { DropLog, Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import { openBox } from './open.ts';
import { decide } from './policy.ts';
import type { ServerBounds } from './policy.ts';
import { prefilter } from './prefilter.ts';
import type { RateLimiter } from './ratelimit.ts';
import { replayDigest } from './replay.ts';
import type { ReplayStore } from './replay.ts';
import type { UserTable } from './users.ts';
import type { AuthorizedKey } from './verify.ts';
import { verify } from './verify.ts';

export interface PipelineDeps {
  /** The server keys in force (more than one during a key rotation); replaced on reload. */
  readonly servers: () => readonly ServerKeys[];
  readonly users: () => UserTable;
  readonly limiter: RateLimiter;
  readonly replay: ReplayStore;
  readonly firewall: Firewall;
  readonly bounds: ServerBounds;
  readonly windowMs: number;
  readonly now: () => number;
  readonly log: Logger;
  readonly drops: DropLog;
  /** The confirmation range; absent, no knock is confirmed. */
  readonly confirmPorts?: PortRange;
  /** Brings the kernel in line with the users document again (enforce.ts), serialised with reloads. */
  readonly resync: () => Promise<void>;
  /** Counts knocks whose grants are in the kernel, with their latency (drops are counted by `drops`). */
  readonly metrics?: Metrics;
}

type Detail = Readonly<Record<string, string | number>>;

/** Steps 1-9 are synchronous: no other packet can run between a check and its commit (step 8). */
export function handlePacket(d: PipelineDeps, packet: Uint8Array, source: Address): void {
  const receivedMs = performance.now();
  const dropped = (reason: DropReason, detail?: Detail, user?: string): void => d.drops.record(reason, source, user === undefined ? detail : { ...detail, user });

  const pre = prefilter(packet, d.servers(), { nowMs: d.now(), windowMs: d.windowMs }); // 1 prefilter.ts: length, version, token, mac1 (which server key)
  if (!pre.ok) return dropped(pre.reason, pre.detail);
  const { outer, server } = pre.value;
  if (d.replay.seenPacket(outer.mac1)) return dropped(DROP.replay); // 2 replay.ts: this very packet was accepted before
  const admitted = d.limiter.take(rateKey(source)); // 3 ratelimit.ts: per-source and global budgets for public-key work
  if (admitted !== 'ok') return dropped(admitted);
  const inner = openBox(outer, server); // 4 open.ts: the sealed box
  if (!inner.ok) return dropped(inner.reason, inner.detail);
  const users = d.users();
  const key = verify(inner.value, users.lookup, server.publicKey); // 5 verify.ts: key id, signature, not revoked
  if (!key.ok) return dropped(key.reason, key.detail);
  const { user } = key.value;
  const payload = decodePayload(inner.value.payloadBytes); // 6 parse.ts: decode and validate the payload
  if (!payload.ok) return dropped(payload.reason, payload.detail, user);
  const fresh = checkFreshness(payload.value.timestampMs, d.now(), d.windowMs); // 7 freshness.ts: timestamp within the window
  if (!fresh.ok) return dropped(fresh.reason, fresh.detail, user);
  const first = d.replay.checkAndCommit(replayDigest(key.value.keyId, inner.value.payloadBytes), outer.mac1, payload.value.timestampMs); // 8 replay.ts: first use, recorded
  if (!first.ok) return dropped(first.reason, first.detail, user);
  const policy = users.policy(user);
  if (policy === undefined) return dropped(DROP.unknownKey);
  const grants = decide(payload.value, source, policy, d.bounds); // 9 policy.ts: source, address, ports, duration
  if (!grants.ok) return dropped(grants.reason, grants.detail);
  d.limiter.vouch(rateKey(source)); // this source sends real knocks: it keeps a share of the box-open budget under a flood
  d.log.info(
    { event: 'knock.accepted', user, keyId: toHex(key.value.keyId), serverKey: fingerprint(server.publicKey), source: source.text, ports: payload.value.access.map(formatAccess), ttlSeconds: grants.value[0]?.ttlSeconds, skewMs: payload.value.timestampMs - d.now() },
    'knock accepted',
  );
  const owner = ownerOf(key.value.keyId);
  void openGrants(d, key.value, grants.value.map((g) => ({ ...g, owner })), source, receivedMs, payload.value.confirmPort); // 10 firewall.ts: in the kernel, once the replay record is durable
}

/** The only asynchronous step: make the replay record durable, then add the grants. Failures are logged and counted, never thrown. */
async function openGrants(d: PipelineDeps, key: AuthorizedKey, grants: readonly Grant[], source: Address, receivedMs: number, confirmPort: number | undefined): Promise<void> {
  try {
    await d.replay.durable();
  } catch (err) {
    d.drops.record(DROP.replayUnavailable, source, { user: key.user, errno: errnoCode(err) || (/\b(E[A-Z]{2,})\b/.exec(errorMessage(err))?.[1] ?? 'unknown') });
    d.log.error({ event: 'replay.failed', user: key.user, err: errorMessage(err) }, 'could not make the replay record durable: knock refused, nothing opened');
    return;
  }
  try {
    await d.firewall.grant(grants);
  } catch (err) {
    const full = err instanceof GrantBookFullError;
    d.drops.record(full ? DROP.grantBookFull : DROP.firewallError, source, { user: key.user });
    if (full) d.log.warn({ event: 'grant.book_full', user: key.user, source: source.text }, 'knock refused: the kernel holds limits.maxGrants grants already');
    else d.log.error({ event: 'grant.failed', user: key.user, err: errorMessage(err) }, 'could not open the firewall');
    return;
  }
  const openMs = performance.now() - receivedMs;
  d.metrics?.granted(openMs);
  for (const g of grants) {
    d.log.info({ event: 'grant.opened', user: key.user, address: g.address.text, port: formatAccess(g.access), ttlSeconds: g.ttlSeconds, openMs: Math.round(openMs * 100) / 100 }, 'grant opened');
  }
  // The key may have been revoked while nft worked: a revocation never leaves behind a grant it could not see.
  const now = d.users().keys.get(toHex(key.keyId));
  if (now === undefined || now.revoked) return d.resync();
  if (confirmPort !== undefined) await confirm(d, key, source, confirmPort);
}

/** After step 10: the grants are in the kernel, so the kernel may now answer the knock's confirmation SYN (README.md, "Confirmation"). */
async function confirm(d: PipelineDeps, key: AuthorizedKey, source: Address, port: number): Promise<void> {
  if (d.confirmPorts === undefined || !inRange(d.confirmPorts, port)) {
    d.log.info({ event: 'confirm.out_of_range', user: key.user, source: source.text, port, range: d.confirmPorts === undefined ? 'none' : formatRange(d.confirmPorts) }, 'knock served unconfirmed: its confirmation port is not in confirmPorts');
    return;
  }
  try {
    await d.firewall.confirm(source, port);
    d.log.info({ event: 'confirm.armed', user: key.user, source: source.text, port }, 'confirmation armed');
  } catch (err) {
    d.log.warn({ event: 'confirm.failed', user: key.user, source: source.text, port, err: errorMessage(err) }, 'knock served unconfirmed: could not add the confirmation');
  }
}
