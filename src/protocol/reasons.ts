// Drop reason codes and the result type every packet step returns: a dropped packet is a value, not an exception.

export const DROP = {
  /** A source no knocking host has: an IPv4-mapped IPv6 address (::ffff:a.b.c.d), as a UDP socket reports it. */
  badSource: 'bad_source',
  /** Packet length outside [MIN_PACKET_BYTES, MAX_PACKET_BYTES]. */
  badLength: 'bad_length',
  /** First four bytes are "ses" + version 1 and the length is a version 1 knock's: the client must be upgraded. */
  oldVersion: 'old_version',
  /** First four bytes are not "ses" + version 2. */
  badVersion: 'bad_version',
  /** Bytes 4..7 are not the token of a slot the server accepts now: sender does not know this server's public key, or its clock is off. */
  badToken: 'bad_token',
  /** mac1 does not match: sender does not know this server's public key. */
  badMac: 'bad_mac',
  /** Too many mac1-valid packets from this source (IPv4 address, IPv6 /64). */
  rateLimited: 'rate_limited',
  /** The global budget of box opens per second is spent (sources that used less of it are served first). */
  busy: 'busy',
  /** Sealed box does not open with this server's key. */
  badBox: 'bad_box',
  /** No authorized key has this key id. */
  unknownKey: 'unknown_key',
  /** Ed25519 signature does not verify for this server. */
  badSignature: 'bad_signature',
  /** Signed by a key that has been revoked. */
  revoked: 'revoked',
  /** Payload is not msgpack matching the payload schema. */
  badPayload: 'bad_payload',
  /** Timestamp outside the freshness window. */
  stale: 'stale',
  /** This exact knock was accepted before. */
  replay: 'replay',
  /** The replay record is full; refusing rather than forgetting. */
  replayFull: 'replay_full',
  /** Requested a protocol/port the user may not open. */
  portNotAllowed: 'port_not_allowed',
  /** Source address outside the user's allowed CIDRs. */
  sourceNotAllowed: 'source_not_allowed',
  /** Asked to open another address without permission. */
  addressNotAllowed: 'address_not_allowed',
  /** The replay record could not be made durable (disk full, I/O error): no grant without a record. */
  replayUnavailable: 'replay_unavailable',
  /** The book of open grants is at limits.maxGrants; refusing rather than losing track of one. */
  grantBookFull: 'grant_book_full',
  /** The firewall refused or failed to add the grant. */
  firewallError: 'firewall_error',
  /** A bug: a step threw instead of returning a reason. Counted and logged; the daemon keeps serving. */
  internalError: 'internal_error',
} as const;

export type DropReason = (typeof DROP)[keyof typeof DROP];

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: DropReason; readonly detail?: Readonly<Record<string, string | number>> };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function drop(reason: DropReason, detail?: Readonly<Record<string, string | number>>): { readonly ok: false; readonly reason: DropReason; readonly detail?: Readonly<Record<string, string | number>> } {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}
