// The knock parser: outer packet (step 1, with prefilter), inner plaintext (step 4, after the box opens) and payload (step 6: decode and validate). Input: untrusted bytes; exact lengths first; typed values out; drops are reason codes, never exceptions.
// msgpackr/unpack resolves to the pure-JS build in Node: the native string extractor (msgpackr-extract) never sees untrusted bytes.
import { Unpackr } from 'msgpackr/unpack';
import type { Access } from './access.ts';
import { addressFromBytes, isV4Mapped } from './address.ts';
import { keyId } from './bytes.ts';
import type { KeyId } from './bytes.ts';
import { CEILING } from '../limits.ts';
import { compileSchema } from '../schema.ts';
import { INNER, MAX_PACKET_BYTES, MIN_PACKET_BYTES, V1_PACKET_BYTES, WIRE } from './layout.ts';
import { isCanonicalAccess, writePayload } from './payload.ts';
import type { PayloadFields } from './payload.ts';
import { DROP, drop, ok } from './reasons.ts';
import type { Result } from './reasons.ts';

/** Outer packet: header(4) | token(4) | sealed box | mac1(16). */
export interface OuterPacket {
  /** The slot token, as a big-endian u32. */
  readonly token: number;
  /** header || token || sealed box: the bytes mac1 covers. */
  readonly macInput: Uint8Array;
  readonly box: Uint8Array;
  readonly mac1: Uint8Array;
}

/** Inner plaintext: key id(16) | signature(64) | payload. */
export interface InnerPacket {
  readonly keyId: KeyId;
  readonly signature: Uint8Array;
  readonly payloadBytes: Uint8Array;
}

/** The decoded payload: the same fields the canonical encoding writes (payload.ts), so the two cannot drift apart. */
export type Payload = PayloadFields;

const startsWith = (packet: Uint8Array, header: Uint8Array): boolean => header.every((b, i) => packet[i] === b);

/** A version 1 knock (its header, its length bounds), refused with its own reason so the log says to upgrade the client. Then the length bounds, then the header. Nothing else is read before these pass. */
export function parseOuter(packet: Uint8Array): Result<OuterPacket> {
  if (packet.length >= V1_PACKET_BYTES.min && packet.length <= V1_PACKET_BYTES.max && startsWith(packet, WIRE.oldHeader)) return drop(DROP.oldVersion);
  if (packet.length < MIN_PACKET_BYTES || packet.length > MAX_PACKET_BYTES) return drop(DROP.badLength, { bytes: packet.length });
  if (!startsWith(packet, WIRE.header)) return drop(DROP.badVersion);
  const macAt = packet.length - WIRE.mac1Bytes;
  const token = new DataView(packet.buffer, packet.byteOffset + WIRE.tokenAt, WIRE.tokenBytes).getUint32(0);
  return ok({ token, macInput: packet.subarray(0, macAt), box: packet.subarray(WIRE.tokenAt + WIRE.tokenBytes, macAt), mac1: packet.subarray(macAt) });
}

/** The box opened, so its length follows from the outer bounds; the split cannot fail. */
export function splitInner(plain: Uint8Array): InnerPacket {
  return {
    keyId: keyId(plain.subarray(INNER.keyIdAt, INNER.signatureAt)),
    signature: plain.subarray(INNER.signatureAt, INNER.payloadAt),
    payloadBytes: plain.subarray(INNER.payloadAt),
  };
}

/** The payload as msgpack decodes it, before conversion to typed values. */
interface WirePayload {
  t: number;
  n: Uint8Array;
  a: [string, number][];
  d?: number;
  o?: Uint8Array;
  c?: number;
}

/** The payload schema (README.md, "Payload"). Unknown keys, wrong types and out-of-range values are refused. */
const PAYLOAD_SCHEMA = {
  type: 'object',
  required: ['t', 'n', 'a'],
  additionalProperties: false,
  properties: {
    t: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    n: { byteLengths: [WIRE.nonceBytes] },
    a: {
      type: 'array',
      minItems: 1,
      maxItems: WIRE.maxAccessEntries,
      items: {
        type: 'array',
        minItems: 2,
        maxItems: 2,
        items: [{ type: 'string', enum: ['tcp', 'udp'] }, { type: 'integer', minimum: 1, maximum: 65_535 }],
      },
    },
    d: { type: 'integer', minimum: 1, maximum: CEILING.durationSeconds },
    o: { byteLengths: WIRE.openAddressBytes },
    c: { type: 'integer', minimum: 1, maximum: 65_535 },
  },
} as const;

const validatePayload = compileSchema<WirePayload>(PAYLOAD_SCHEMA);

// Untrusted msgpack: no records/structures, 64-bit integers as numbers, plain objects for maps.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function decodePayload(bytes: Uint8Array): Result<Payload> {
  let decoded: unknown;
  try {
    decoded = unpackr.unpack(bytes);
  } catch {
    return drop(DROP.badPayload, { why: 'msgpack' });
  }
  if (!validatePayload(decoded)) return drop(DROP.badPayload, { why: 'schema' });
  // An IPv4 target is 4 bytes; ::ffff:a.b.c.d would let one address be named two ways (and pass as IPv4 to `from`).
  if (decoded.o !== undefined && isV4Mapped(decoded.o)) return drop(DROP.badPayload, { why: 'mapped address' });
  const access = decoded.a.map(([proto, port]): Access => ({ proto: proto === 'udp' ? 'udp' : 'tcp', port }));
  if (!isCanonicalAccess(access)) return drop(DROP.badPayload, { why: 'access order' });
  const openAddress = decoded.o === undefined ? undefined : addressFromBytes(decoded.o);
  const payload: Payload = {
    timestampMs: decoded.t,
    nonce: Uint8Array.from(decoded.n),
    access,
    ...(decoded.d === undefined ? {} : { durationSeconds: decoded.d }),
    ...(openAddress === undefined ? {} : { openAddress }),
    ...(decoded.c === undefined ? {} : { confirmPort: decoded.c }),
  };
  // One encoding per payload: key order, shortest integers, no floats, no duplicate keys, nothing else passes this.
  if (!sameBytes(writePayload(payload), bytes)) return drop(DROP.badPayload, { why: 'non-canonical' });
  return ok(payload);
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
