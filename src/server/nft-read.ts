// Reads sesame's table from `nft -j list table`: live grants with their owners, admitted connections, the daemon's claim, the layout version. Trusts nothing in the JSON: every field is checked, and an element that does not fit is an error, never guessed at.
import { isPort } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import type { ProcessId } from '../process.ts';
import type { AdmittedConnection, LiveGrant } from './firewall.ts';

export interface TableView {
  readonly exists: boolean;
  readonly grants: readonly LiveGrant[];
  readonly admitted: readonly AdmittedConnection[];
  readonly owners: readonly ProcessId[];
  readonly revokedMarks: readonly number[];
  /** allow4/allow6 are plain sets: the layout of sesame before grants had owners. */
  readonly legacySets: boolean;
}

export const EMPTY_TABLE: TableView = { exists: false, grants: [], admitted: [], owners: [], revokedMarks: [], legacySets: false };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const PROTO_NUMBERS: Readonly<Record<string, 'tcp' | 'udp'>> = { '6': 'tcp', '17': 'udp', tcp: 'tcp', udp: 'udp' };
const u32 = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined);

function bad(what: string, raw: unknown): Error {
  return new Error(`unexpected ${what} in nft -j output: ${JSON.stringify(raw).slice(0, 200)}`);
}

/** A map element: [{elem: {val: {concat: [addr, proto, port]}, expires, comment}}, mark]. */
function grantFrom(raw: unknown): LiveGrant {
  if (!Array.isArray(raw) || raw.length !== 2) throw bad('grant', raw);
  const [key, value]: unknown[] = raw;
  const elem = isRecord(key) && isRecord(key['elem']) ? key['elem'] : undefined;
  const parts = elem !== undefined && isRecord(elem['val']) ? elem['val']['concat'] : undefined;
  if (elem === undefined || !Array.isArray(parts) || parts.length !== 3) throw bad('grant', raw);
  const [addressText, protoText, portValue]: unknown[] = parts;
  const address = typeof addressText === 'string' ? parseAddress(addressText) : undefined;
  const proto = PROTO_NUMBERS[String(protoText)];
  const port = Number(portValue);
  const mark = u32(value);
  const comment = elem['comment'];
  const expires = elem['expires'];
  if (address === undefined || proto === undefined || !isPort(port) || mark === undefined || typeof comment !== 'string' || !/^[0-9a-f]{32}$/.test(comment)) throw bad('grant', raw);
  const access: Access = { proto, port };
  return { address, access, owner: { keyIdHex: comment, mark }, expiresInSeconds: typeof expires === 'number' ? expires : 0 };
}

/** A dynamic set element: {elem: {val: {concat: [ctId, addr, mark]}}} or {concat: [...]}. */
function admittedFrom(raw: unknown): AdmittedConnection {
  const wrapped = isRecord(raw) && isRecord(raw['elem']) ? raw['elem']['val'] : raw;
  const parts = isRecord(wrapped) ? wrapped['concat'] : undefined;
  if (!Array.isArray(parts) || parts.length !== 3) throw bad('admitted connection', raw);
  const [id, addressText, markValue]: unknown[] = parts;
  const ctId = u32(id);
  const source = typeof addressText === 'string' ? parseAddress(addressText) : undefined;
  const mark = u32(markValue);
  if (ctId === undefined || source === undefined || mark === undefined) throw bad('admitted connection', raw);
  return { ctId, source, mark };
}

function ownerFrom(raw: unknown): ProcessId {
  const parts = isRecord(raw) ? raw['concat'] : undefined;
  const pid = Array.isArray(parts) ? u32(parts[0]) : undefined;
  const startTicks = Array.isArray(parts) ? u32(parts[1]) : undefined;
  if (pid === undefined || startTicks === undefined) throw bad('owner', raw);
  return { pid, startTicks };
}

/** Parses `nft -j list table inet NAME`. */
export function readTable(json: string): TableView {
  const doc: unknown = JSON.parse(json);
  const items = isRecord(doc) && Array.isArray(doc['nftables']) ? doc['nftables'] : [];
  const grants: LiveGrant[] = [];
  const admitted: AdmittedConnection[] = [];
  const owners: ProcessId[] = [];
  const revokedMarks: number[] = [];
  let legacySets = false;
  for (const item of items) {
    if (!isRecord(item)) continue;
    const map = isRecord(item['map']) ? item['map'] : undefined;
    const set = isRecord(item['set']) ? item['set'] : undefined;
    const elems = (o: Record<string, unknown> | undefined): unknown[] => (o !== undefined && Array.isArray(o['elem']) ? o['elem'] : []);
    if (map !== undefined && (map['name'] === 'allow4' || map['name'] === 'allow6')) grants.push(...elems(map).map(grantFrom));
    if (set === undefined) continue;
    const name = set['name'];
    if (name === 'allow4' || name === 'allow6') legacySets = true;
    else if (name === 'admitted4' || name === 'admitted6') admitted.push(...elems(set).map(admittedFrom));
    else if (name === 'owner') owners.push(...elems(set).map(ownerFrom));
    else if (name === 'revoked') {
      for (const e of elems(set)) {
        const mark = u32(e);
        if (mark === undefined) throw bad('revoked mark', e);
        revokedMarks.push(mark);
      }
    }
  }
  return { exists: true, grants, admitted, owners, revokedMarks, legacySets };
}
