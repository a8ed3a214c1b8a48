// The frame parser (pcap mode): link layer, IPv4/IPv6 and UDP headers of a captured frame, each length checked against the captured bytes. Input: untrusted bytes from libpcap; typed values out; drops are reason codes.
import { addressFromBytes, isV4Mapped } from './address.ts';
import type { Address } from './address.ts';
import { FRAME } from '../limits.ts';

/** libpcap DLT_* values parseFrame understands (pcap_datalink() on Linux). */
export const LINK_TYPE = {
  ethernet: 1,
  /** DLT_RAW as Linux libpcap reports it; 101 is LINKTYPE_RAW, the same format in savefiles. */
  raw: 12,
  rawSavefile: 101,
  linuxSll: 113,
  linuxSll2: 276,
  rawIpv4: 228,
  rawIpv6: 229,
} as const;

export const FRAME_DROP = {
  linkType: 'bad_frame_link_type',
  /** Link-layer header (Ethernet, VLAN tags, SLL/SLL2) cut short. */
  linkShort: 'bad_frame_link_short',
  /** More stacked VLAN tags than FRAME.maxVlanTags. */
  vlanDepth: 'bad_frame_vlan_depth',
  /** Cooked capture says this host sent the frame. */
  outgoing: 'bad_frame_outgoing',
  /** Cooked capture says the frame was for another host (promiscuous mode). */
  otherHost: 'bad_frame_other_host',
  notIp: 'bad_frame_not_ip',
  /** IP version nibble disagrees with the link layer's protocol. */
  ipVersion: 'bad_frame_ip_version',
  /** IPv4 IHL below 5 or past the captured bytes. */
  ipv4Header: 'bad_frame_ipv4_header',
  ipv4Checksum: 'bad_frame_ipv4_checksum',
  /** IPv4 total length below the header or past the captured bytes. */
  ipv4Length: 'bad_frame_ipv4_length',
  /** IPv6 payload length zero (jumbogram) or past the captured bytes. */
  ipv6Length: 'bad_frame_ipv6_length',
  /** IPv6 extension header truncated, misplaced, unsupported, or too many. */
  ipv6Extension: 'bad_frame_ipv6_ext',
  /** A non-first fragment, or a first fragment with more to come: reassembly is out of scope. */
  fragment: 'bad_frame_fragment',
  notUdp: 'bad_frame_not_udp',
  /** Unspecified, multicast, broadcast, or (IPv6) IPv4-mapped source: never a knocking host. */
  source: 'bad_frame_source',
  udpHeader: 'bad_frame_udp_header',
  /** UDP length below 8 or past the IP payload. */
  udpLength: 'bad_frame_udp_length',
  /** Captured by libpcap but not to the knock port (set by the capture, not by parseFrame). */
  wrongPort: 'bad_frame_port',
  /** Longer than the capture buffer (set by the capture, not by parseFrame). */
  snapTruncated: 'bad_frame_snap_truncated',
} as const;

export type FrameDrop = (typeof FRAME_DROP)[keyof typeof FRAME_DROP];

export interface Datagram {
  readonly source: Address;
  readonly destPort: number;
  /** A view into the frame, not a copy. */
  readonly payload: Uint8Array;
}

export type FrameResult = { readonly ok: true; readonly value: Datagram } | { readonly ok: false; readonly reason: FrameDrop };

/** Field values and header sizes fixed by the Ethernet, IP and UDP standards. */
const ETHERTYPE = { ipv4: 0x0800, ipv6: 0x86dd, vlan: 0x8100, qinq: 0x88a8, qinqOld: 0x9100 } as const;
const IP_PROTO = { hopByHop: 0, udp: 17, routing: 43, fragment: 44, destOptions: 60 } as const;
/** Linux PACKET_* values in the cooked header's packet type. */
const PACKET_TYPE = { otherHost: 3, outgoing: 4 } as const;
const HEADER_BYTES = { ethernet: 14, vlanTag: 4, sll: 16, sll2: 20, ipv4Min: 20, ipv6: 40, udp: 8 } as const;

type Step = { readonly ok: true; readonly at: number; readonly end: number; readonly proto: number } | { readonly ok: false; readonly reason: FrameDrop };

const fail = (reason: FrameDrop): { readonly ok: false; readonly reason: FrameDrop } => ({ ok: false, reason });

/** Reads past `f.length` come back as 0; every caller checks bounds first, this only keeps types exact. */
const u8 = (f: Uint8Array, at: number): number => f[at] ?? 0;
const u16 = (f: Uint8Array, at: number): number => (u8(f, at) << 8) | u8(f, at + 1);

const PARSED_LINK_TYPES: ReadonlySet<number> = new Set(Object.values(LINK_TYPE));

/** Whether parseFrame reads this DLT at all; a capture checks it once when it opens. */
export function isParsedLinkType(linkType: number): boolean {
  return PARSED_LINK_TYPES.has(linkType);
}

export function parseFrame(linkType: number, frame: Uint8Array): FrameResult {
  switch (linkType) {
    case LINK_TYPE.ethernet:
      return fromEthernet(frame);
    case LINK_TYPE.linuxSll:
      return fromSll(frame);
    case LINK_TYPE.linuxSll2:
      return fromSll2(frame);
    case LINK_TYPE.raw:
    case LINK_TYPE.rawSavefile:
      return fromIp(frame, 0, undefined);
    case LINK_TYPE.rawIpv4:
      return fromIp(frame, 0, ETHERTYPE.ipv4);
    case LINK_TYPE.rawIpv6:
      return fromIp(frame, 0, ETHERTYPE.ipv6);
    default:
      return fail(FRAME_DROP.linkType);
  }
}

function fromEthernet(f: Uint8Array): FrameResult {
  if (f.length < HEADER_BYTES.ethernet) return fail(FRAME_DROP.linkShort);
  return afterEthertype(f, HEADER_BYTES.ethernet, u16(f, 12));
}

/** Linux cooked v1: packet type(2) | ARPHRD(2) | address length(2) | address(8) | protocol(2). */
function fromSll(f: Uint8Array): FrameResult {
  if (f.length < HEADER_BYTES.sll) return fail(FRAME_DROP.linkShort);
  const direction = cookedDirection(u16(f, 0));
  if (direction !== undefined) return fail(direction);
  return afterEthertype(f, HEADER_BYTES.sll, u16(f, 14));
}

/** Linux cooked v2: protocol(2) | reserved(2) | ifindex(4) | ARPHRD(2) | packet type(1) | address length(1) | address(8). */
function fromSll2(f: Uint8Array): FrameResult {
  if (f.length < HEADER_BYTES.sll2) return fail(FRAME_DROP.linkShort);
  const direction = cookedDirection(u8(f, 10));
  if (direction !== undefined) return fail(direction);
  return afterEthertype(f, HEADER_BYTES.sll2, u16(f, 0));
}

function cookedDirection(packetType: number): FrameDrop | undefined {
  if (packetType === PACKET_TYPE.outgoing) return FRAME_DROP.outgoing;
  if (packetType === PACKET_TYPE.otherHost) return FRAME_DROP.otherHost;
  return undefined;
}

/** Skips up to FRAME.maxVlanTags 802.1Q/802.1ad tags, then hands IPv4 or IPv6 on. */
function afterEthertype(f: Uint8Array, start: number, firstType: number): FrameResult {
  let at = start;
  let type = firstType;
  for (let tags = 0; isVlan(type); tags++) {
    if (tags === FRAME.maxVlanTags) return fail(FRAME_DROP.vlanDepth);
    if (f.length < at + HEADER_BYTES.vlanTag) return fail(FRAME_DROP.linkShort);
    type = u16(f, at + 2);
    at += HEADER_BYTES.vlanTag;
  }
  if (type !== ETHERTYPE.ipv4 && type !== ETHERTYPE.ipv6) return fail(FRAME_DROP.notIp);
  return fromIp(f, at, type);
}

function isVlan(type: number): boolean {
  return type === ETHERTYPE.vlan || type === ETHERTYPE.qinq || type === ETHERTYPE.qinqOld;
}

/** `expected` is the link layer's word on the IP version; undefined for raw IP, where the nibble decides. */
function fromIp(f: Uint8Array, at: number, expected: number | undefined): FrameResult {
  if (f.length <= at) return fail(expected === ETHERTYPE.ipv6 ? FRAME_DROP.ipv6Length : expected === ETHERTYPE.ipv4 ? FRAME_DROP.ipv4Header : FRAME_DROP.ipVersion);
  const version = u8(f, at) >> 4;
  const type = version === 4 ? ETHERTYPE.ipv4 : version === 6 ? ETHERTYPE.ipv6 : undefined;
  if (type === undefined || (expected !== undefined && type !== expected)) return fail(FRAME_DROP.ipVersion);
  return type === ETHERTYPE.ipv4 ? fromIpv4(f, at) : fromIpv6(f, at);
}

function fromIpv4(f: Uint8Array, at: number): FrameResult {
  if (f.length < at + HEADER_BYTES.ipv4Min) return fail(FRAME_DROP.ipv4Header);
  const headerBytes = (u8(f, at) & 0x0f) * 4;
  if (headerBytes < HEADER_BYTES.ipv4Min || f.length < at + headerBytes) return fail(FRAME_DROP.ipv4Header);
  const totalBytes = u16(f, at + 2);
  // Captured bytes may exceed the total length (Ethernet padding); they may not fall short of it.
  if (totalBytes < headerBytes || f.length < at + totalBytes) return fail(FRAME_DROP.ipv4Length);
  // The kernel drops a bad header checksum after the capture point; so do we, to see what a socket would.
  if (ipv4ChecksumOf(f, at, headerBytes) !== 0) return fail(FRAME_DROP.ipv4Checksum);
  const flagsAndOffset = u16(f, at + 6);
  if ((flagsAndOffset & 0x3fff) !== 0) return fail(FRAME_DROP.fragment);
  if (u8(f, at + 9) !== IP_PROTO.udp) return fail(FRAME_DROP.notUdp);
  const source = ipv4Source(f.subarray(at + 12, at + 16));
  if (source === undefined) return fail(FRAME_DROP.source);
  return fromUdp(f, at + headerBytes, at + totalBytes, source);
}

/** One's-complement sum over the header, checksum field included: 0 when the checksum is right. */
function ipv4ChecksumOf(f: Uint8Array, at: number, headerBytes: number): number {
  let sum = 0;
  for (let i = at; i < at + headerBytes; i += 2) sum += u16(f, i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4Source(raw: Uint8Array): Address | undefined {
  const first = u8(raw, 0);
  const isZero = raw.every((b) => b === 0);
  const isBroadcast = raw.every((b) => b === 0xff);
  if (isZero || isBroadcast || (first >= 224 && first <= 239)) return undefined;
  return addressFromBytes(raw);
}

function fromIpv6(f: Uint8Array, at: number): FrameResult {
  if (f.length < at + HEADER_BYTES.ipv6) return fail(FRAME_DROP.ipv6Length);
  const payloadBytes = u16(f, at + 4);
  const end = at + HEADER_BYTES.ipv6 + payloadBytes;
  if (payloadBytes === 0 || f.length < end) return fail(FRAME_DROP.ipv6Length);
  const chain = walkExtensions(f, at + HEADER_BYTES.ipv6, end, u8(f, at + 6));
  if (!chain.ok) return chain;
  if (chain.proto !== IP_PROTO.udp) return fail(FRAME_DROP.notUdp);
  const source = ipv6Source(f.subarray(at + 8, at + 24));
  if (source === undefined) return fail(FRAME_DROP.source);
  return fromUdp(f, chain.at, chain.end, source);
}

/**
 * Follows hop-by-hop (first only), routing, destination options and atomic fragment headers, each bounded by `end`.
 * Anything else (ESP, AH, no-next-header, an upper layer) ends the walk; the caller checks it is UDP.
 */
function walkExtensions(f: Uint8Array, start: number, end: number, firstProto: number): Step {
  let at = start;
  let proto = firstProto;
  for (let count = 0; ; count++) {
    const isOptions = proto === IP_PROTO.hopByHop || proto === IP_PROTO.routing || proto === IP_PROTO.destOptions;
    if (!isOptions && proto !== IP_PROTO.fragment) return { ok: true, at, end, proto };
    if (count === FRAME.maxIpv6ExtensionHeaders) return fail(FRAME_DROP.ipv6Extension);
    if (proto === IP_PROTO.hopByHop && count !== 0) return fail(FRAME_DROP.ipv6Extension);
    if (end < at + 8) return fail(FRAME_DROP.ipv6Extension);
    const next = u8(f, at);
    if (proto === IP_PROTO.fragment) {
      // Offset (13 bits) and M flag: only an atomic fragment (both zero) is a whole datagram.
      if ((u16(f, at + 2) & 0xfff9) !== 0) return fail(FRAME_DROP.fragment);
      at += 8;
    } else {
      const bytes = (u8(f, at + 1) + 1) * 8;
      if (end < at + bytes) return fail(FRAME_DROP.ipv6Extension);
      at += bytes;
    }
    proto = next;
  }
}

function ipv6Source(raw: Uint8Array): Address | undefined {
  const isUnspecified = raw.every((b) => b === 0);
  const isMulticast = u8(raw, 0) === 0xff;
  // addressFromBytes folds ::ffff:a.b.c.d to IPv4: an IPv6 packet must not claim an IPv4 source.
  if (isUnspecified || isMulticast || isV4Mapped(raw)) return undefined;
  return addressFromBytes(raw);
}

/** `end` is where the IP layer says the datagram stops; UDP may claim less (Linux trims), never more. */
function fromUdp(f: Uint8Array, at: number, end: number, source: Address): FrameResult {
  if (end < at + HEADER_BYTES.udp) return fail(FRAME_DROP.udpHeader);
  const udpBytes = u16(f, at + 4);
  if (udpBytes < HEADER_BYTES.udp || end < at + udpBytes) return fail(FRAME_DROP.udpLength);
  return { ok: true, value: { source, destPort: u16(f, at + 2), payload: f.subarray(at + HEADER_BYTES.udp, at + udpBytes) } };
}
