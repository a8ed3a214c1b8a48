// The packet path, top to bottom: prefilter, rate limit, open, verify, replay, policy, firewall. Input: raw untrusted bytes and the source address the capture saw.
import { rateKey } from './address.ts';
import type { Address } from './address.ts';
import { toHex } from './bytes.ts';
import { authenticate } from './check.ts';
import type { Firewall, Grant } from './firewall.ts';
import type { GrantBook } from './grants.ts';
import type { ServerKeys } from './keys.ts';
import type { DropLog, Logger } from './log.ts';
import { decide } from './policy.ts';
import type { ServerBounds } from './policy.ts';
import { prefilter } from './prefilter.ts';
import type { RateLimiter } from './ratelimit.ts';
import { DROP } from './reasons.ts';
import type { DropReason } from './reasons.ts';
import { replayDigest } from './replay.ts';
import type { ReplayStore } from './replay.ts';
import type { UserTable } from './users.ts';
import type { VerifiedKnock } from './verify.ts';

export interface PipelineDeps {
  readonly server: ServerKeys;
  readonly users: () => UserTable;
  readonly limiter: RateLimiter;
  readonly replay: ReplayStore;
  readonly firewall: Firewall;
  readonly grants: GrantBook;
  readonly bounds: ServerBounds;
  readonly windowMs: number;
  readonly now: () => number;
  readonly log: Logger;
  readonly drops: DropLog;
}

/** Synchronous from the first byte to the replay commit: no other packet can interleave a check with its commit. */
export function handlePacket(d: PipelineDeps, packet: Uint8Array, source: Address): void {
  const receivedMs = performance.now();
  const outer = prefilter(packet, d.server.mac1Key);
  if (!outer.ok) return d.drops.record(outer.reason, source, outer.detail);
  if (d.replay.seenPacket(outer.value.mac1)) return d.drops.record(DROP.replay, source);
  if (!d.limiter.admit(rateKey(source))) return d.drops.record(DROP.rateLimited, source);
  const users = d.users();
  const knock = authenticate(outer.value, { server: d.server, lookup: users.lookup, nowMs: d.now(), windowMs: d.windowMs });
  if (!knock.ok) return d.drops.record(knock.reason, source, knock.detail);
  const { key, payload, payloadBytes } = knock.value;
  const first = d.replay.checkAndCommit(replayDigest(key.keyId, payloadBytes), outer.value.mac1, payload.timestampMs);
  if (!first.ok) return d.drops.record(first.reason, source, { ...first.detail, user: key.user });
  const policy = users.policy(key.user);
  if (policy === undefined) return d.drops.record(DROP.unknownKey, source);
  const grants = decide(payload, source, policy, d.bounds);
  if (!grants.ok) return d.drops.record(grants.reason, source, grants.detail);
  if (!d.grants.hasRoom(grants.value.length)) return d.drops.record(DROP.firewallError, source, { user: key.user, why: 'grant book full' });
  d.log.info(
    { event: 'knock.accepted', user: key.user, keyId: toHex(key.keyId), source: source.text, ports: payload.access.map((a) => `${a.proto}/${a.port}`), ttlSeconds: grants.value[0]?.ttlSeconds, skewMs: payload.timestampMs - d.now() },
    'knock accepted',
  );
  void openGrants(d, knock.value, grants.value, source, receivedMs);
}

/** The only asynchronous step: make the replay record durable, then add the grants; failures are logged, never thrown. */
async function openGrants(d: PipelineDeps, knock: VerifiedKnock, grants: readonly Grant[], source: Address, receivedMs: number): Promise<void> {
  try {
    await d.replay.durable();
    await d.firewall.grant(grants);
    d.grants.record(toHex(knock.key.keyId), knock.key.user, grants);
    for (const g of grants) {
      d.log.info({ event: 'grant.opened', user: knock.key.user, address: g.address.text, port: `${g.access.proto}/${g.access.port}`, ttlSeconds: g.ttlSeconds, openMs: Math.round((performance.now() - receivedMs) * 100) / 100 }, 'grant opened');
    }
  } catch (err) {
    const reason: DropReason = DROP.firewallError;
    d.drops.record(reason, source, { user: knock.key.user });
    d.log.error({ event: 'grant.failed', user: knock.key.user, err: err instanceof Error ? err.message : String(err) }, 'could not open the firewall');
  }
}
