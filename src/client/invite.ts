// Invitations: the one line (and its QR code) an admin gives a user, holding a server's host, knock port, public keys and the user's ports. Parses pasted text: trusts none of it.
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { formatAccess, parseAccess } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import { toBase64 } from '../protocol/bytes.ts';
import type { ServerPublicKey } from '../protocol/bytes.ts';
import { KEY_TYPE, parseServerPublicKey } from '../protocol/keyfile.ts';
import { WIRE } from '../protocol/layout.ts';
import { errorMessage } from '../errors.ts';

/** Format version 1; the README's "Invitations" section is the spec. */
export const INVITE = {
  prefix: 'sesame-invite:',
  version: 1,
  maxLineChars: 1024,
  maxServerKeys: 4,
  maxAccessEntries: WIRE.maxAccessEntries,
  checkBytes: 6,
} as const;

export interface Invitation {
  /** A DNS name (lower case) or an IP address (canonical text). */
  readonly host: string;
  readonly knockPort: number;
  readonly access: readonly Access[];
  /** The first is the one the client knocks with; several during a server key rotation. */
  readonly serverKeys: readonly ServerPublicKey[];
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

const HEAD = `${INVITE.prefix}${INVITE.version}:`;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const KEY_CHARS = 43; // 32 bytes in unpadded base64url

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/**
 * A host to knock at: an IPv4 or IPv6 address (written canonically), or a DNS name of letter-digit-hyphen labels,
 * written in lower case. A name whose last label is all digits is refused: resolvers read "10.1" as an IPv4 address.
 */
export function parseHost(text: string): Parsed<string> {
  if (isIPv4(text) || isIPv6(text)) {
    const a = parseAddress(text);
    return a === undefined ? fail(`${JSON.stringify(text)} is not a usable IP address (no zone ids)`) : { ok: true, value: a.text };
  }
  const name = text.toLowerCase();
  const labels = name.split('.');
  if (name.length > 253 || !labels.every((l) => LABEL.test(l))) return fail(`${JSON.stringify(text)} is not a host name or IP address (labels of letters, digits and inner hyphens, at most 253 characters, no trailing dot)`);
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return fail(`${JSON.stringify(text)} is neither an IPv4 address nor a host name (its last label is a number)`);
  return { ok: true, value: name };
}

function parsePort(text: string): number | undefined {
  const n = /^[1-9]\d{0,4}$/.test(text) ? Number(text) : NaN;
  return n >= 1 && n <= 65_535 ? n : undefined;
}

function parseAccessField(text: string): Parsed<Access[]> {
  const items = text.split('+');
  if (items.length > INVITE.maxAccessEntries) return fail(`ports: ${items.length} entries, at most ${INVITE.maxAccessEntries} fit in one knock`);
  const out: Access[] = [];
  for (const [i, item] of items.entries()) {
    const a = /^(tcp|udp)\/\d{1,5}$/.test(item) ? parseAccess(item) : undefined;
    if (a === undefined || formatAccess(a) !== item) return fail(`ports[${i}]: ${JSON.stringify(item)} is not tcp/PORT or udp/PORT with PORT 1-65535`);
    if (out.some((b) => formatAccess(b) === item)) return fail(`ports[${i}]: ${item} is listed twice`);
    out.push(a);
  }
  return { ok: true, value: out };
}

/** Each key as unpadded base64url of its 32 bytes, read through the key-file parser like any other key line. */
function parseKeysField(text: string): Parsed<ServerPublicKey[]> {
  const items = text.split('+');
  if (items.length > INVITE.maxServerKeys) return fail(`server keys: ${items.length} keys, at most ${INVITE.maxServerKeys}`);
  const out: ServerPublicKey[] = [];
  for (const [i, item] of items.entries()) {
    const bytes = /^[A-Za-z0-9_-]+$/.test(item) && item.length === KEY_CHARS ? Buffer.from(item, 'base64url') : undefined;
    if (bytes === undefined || bytes.toString('base64url') !== item) return fail(`server keys[${i}]: ${JSON.stringify(item)} is not ${KEY_CHARS} characters of base64url (32 bytes)`);
    let key: ServerPublicKey;
    try {
      key = parseServerPublicKey(`${KEY_TYPE.serverPublic} ${toBase64(bytes)}`).key;
    } catch (err) {
      return fail(`server keys[${i}]: ${errorMessage(err)}`);
    }
    if (out.some((k) => Buffer.compare(k, key) === 0)) return fail(`server keys[${i}]: the same key is listed twice`);
    out.push(key);
  }
  return { ok: true, value: out };
}

/** The last field: unpadded base64url of the first bytes of SHA-256 over everything before it. Catches a mangled or cut copy, not a forgery. */
export function checkOf(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest().subarray(0, INVITE.checkBytes).toString('base64url');
}

/** Builds the line; every field is checked as the import will check it, so a line that is printed also imports. */
export function formatInvitation(inv: Invitation): string {
  const body = `${HEAD}${inv.host},${inv.knockPort},${inv.access.map(formatAccess).join('+')},${inv.serverKeys.map((k) => Buffer.from(k).toString('base64url')).join('+')}`;
  const line = `${body},${checkOf(body)}`;
  const back = parseInvitation(line);
  if (!back.ok) throw new Error(`cannot make an invitation: ${back.reason}`);
  return line;
}

/** Reads a pasted line: surrounding white space is dropped, anything else that is not exactly version 1 is refused naming the field. */
export function parseInvitation(pasted: string): Parsed<Invitation> {
  const line = pasted.trim();
  if (line.length > INVITE.maxLineChars) return fail(`the line is ${line.length} characters long; an invitation has at most ${INVITE.maxLineChars}`);
  if (!line.startsWith(INVITE.prefix)) return fail(`not a sesame invitation (it should start with ${HEAD})`);
  const version = /^(\d{1,3}):/.exec(line.slice(INVITE.prefix.length))?.[1];
  if (version === undefined) return fail(`version: expected ${HEAD} at the start`);
  if (version !== String(INVITE.version)) return fail(`version: this is a version ${version} invitation and this sesame reads version ${INVITE.version} only: update sesame, or ask for a version ${INVITE.version} line`);
  const cut = line.lastIndexOf(',');
  const body = line.slice(0, cut);
  if (cut < 0 || line.slice(cut + 1) !== checkOf(body)) return fail('check: the line is damaged or incomplete (its check field does not match): copy it again, whole');
  const fields = body.slice(HEAD.length).split(',');
  if (fields.length !== 4) return fail(`expected 4 fields (host, knock port, ports, server keys) and the check, got ${fields.length}`);
  const [hostText = '', portText = '', accessText = '', keysText = ''] = fields;
  const host = parseHost(hostText);
  if (!host.ok) return fail(`host: ${host.reason}`);
  if (host.value !== hostText) return fail(`host: ${JSON.stringify(hostText)} is not written as sesame writes it (${host.value})`);
  const knockPort = parsePort(portText);
  if (knockPort === undefined) return fail(`knock port: ${JSON.stringify(portText)} is not a port number 1-65535`);
  const access = parseAccessField(accessText);
  if (!access.ok) return access;
  const keys = parseKeysField(keysText);
  if (!keys.ok) return keys;
  return { ok: true, value: { host: host.value, knockPort, access: access.value, serverKeys: keys.value } };
}

/**
 * The line as a QR code in text: two modules per character cell, drawn with the light modules as blocks, so that on a
 * terminal's dark background the code shows dark on light, as scanners expect. With `colour` (a terminal), each row
 * also sets white on black, so a light background shows it the right way round too; without, it is plain text.
 */
export async function qrText(line: string, colour: boolean): Promise<string> {
  const { default: qrcode } = await import('qrcode-generator');
  const qr = qrcode(0, 'M');
  qr.addData(line, 'Byte');
  qr.make();
  const margin = 2;
  const size = qr.getModuleCount();
  const light = (row: number, col: number): boolean => row < 0 || col < 0 || row >= size || col >= size || !qr.isDark(row, col);
  const rows: string[] = [];
  for (let r = -margin; r < size + margin; r += 2) {
    let text = '';
    for (let c = -margin; c < size + margin; c++) {
      const top = light(r, c);
      const bottom = light(r + 1, c);
      text += top && bottom ? '█' : top ? '▀' : bottom ? '▄' : ' ';
    }
    rows.push(colour ? `\u001b[97;40m${text}\u001b[0m` : text);
  }
  return `${rows.join('\n')}\n`;
}
