// Signed users documents: the envelope an admin Ed25519 key signs (domain-separated, bound to the etcd prefix, with a sequence that a server never lets go back) and the checks a server makes before it reads the document inside. Input: untrusted text from etcd or the state dir.
import { concat, fromBase64, toBase64, toHex, utf8 } from '../protocol/bytes.ts';
import { LABEL } from '../protocol/layout.ts';
import { deriveKeyId } from '../protocol/keys.ts';
import type { UserKeys } from '../protocol/keys.ts';
import { sodium } from '../protocol/sodium.ts';
import { compileSchemaFile } from '../schema.ts';
import type { ValidateFunction } from '../schema.ts';
import { ETCD } from '../limits.ts';
import type { AdminKeys } from './admin-keys.ts';
import type { UsersFile } from './users.ts';

export const SIGNED_FORMAT = 'sesame-users-signed/1';

export interface SignedDocument {
  readonly format: typeof SIGNED_FORMAT;
  readonly sequence: number;
  readonly document: string;
  readonly signer: string;
  readonly signature: string;
}

/** Why a signed document is refused; logged as users.rejected's reason. */
export const REFUSED = {
  malformed: 'malformed',
  unsigned: 'unsigned',
  unknownSigner: 'unknown_signer',
  badSignature: 'bad_signature',
  rollback: 'rollback',
  equivocation: 'equivocation',
} as const;
export type Refused = (typeof REFUSED)[keyof typeof REFUSED];

export type Opened = { readonly ok: true; readonly signed: SignedDocument; readonly json: unknown } | { readonly ok: false; readonly reason: Refused; readonly detail: string };

let validate: ValidateFunction<SignedDocument> | undefined;

/** The signed bytes: label, zero byte, u32 length + the prefix (scope), u64 sequence, the document text. */
function message(scope: string, sequence: number, document: string): Uint8Array {
  const s = utf8(scope);
  const head = Buffer.alloc(4 + s.length + 8);
  head.writeUInt32BE(s.length, 0);
  head.set(s, 4);
  head.writeBigUInt64BE(BigInt(sequence), 4 + s.length);
  return concat(utf8(LABEL.usersDocument), new Uint8Array([0]), head, utf8(document));
}

/** The next sequence: past the current one, and at least the clock, so a wiped store still moves forward. */
export const nextSequence = (current: number | undefined, nowMs: number): number => Math.max((current ?? 0) + 1, nowMs);

/** The envelope's JSON text for doc, signed by admin. */
export function signDocument(doc: UsersFile, sequence: number, scope: string, admin: UserKeys): string {
  const document = JSON.stringify(doc, null, 2);
  const signature = sodium().crypto_sign_detached(message(scope, sequence, document), admin.secretKey);
  const signed: SignedDocument = { format: SIGNED_FORMAT, sequence, document, signer: toHex(deriveKeyId(admin.publicKey)), signature: toBase64(signature) };
  return `${JSON.stringify(signed, null, 2)}\n`;
}

const refuse = (reason: Refused, detail: string): Opened => ({ ok: false, reason, detail });

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Checks the envelope and its signature by a trusted admin key; the document inside is still only JSON (parseUsers checks it). */
export function openSigned(text: string, admins: AdminKeys, scope: string): Opened {
  if (text.length > ETCD.maxDocumentBytes * 2) return refuse(REFUSED.malformed, `larger than ${ETCD.maxDocumentBytes * 2} bytes`);
  const json = parse(text);
  validate ??= compileSchemaFile<SignedDocument>('users-signed.schema.json');
  if (!validate(json)) {
    const plain = typeof json === 'object' && json !== null && 'users' in json;
    return plain ? refuse(REFUSED.unsigned, 'a users document without an admin signature') : refuse(REFUSED.malformed, 'not a signed users document');
  }
  const key = admins.get(json.signer);
  if (key === undefined) return refuse(REFUSED.unknownSigner, `signed by ${json.signer}, which is not in adminKeys`);
  const signature = fromBase64(json.signature);
  if (signature?.length !== 64 || !sodium().crypto_sign_verify_detached(signature, message(scope, json.sequence, json.document), key)) {
    return refuse(REFUSED.badSignature, `the signature of ${json.signer} does not verify (for prefix ${scope})`);
  }
  const inner = parse(json.document);
  if (inner === undefined) return refuse(REFUSED.malformed, 'the signed document is not JSON');
  return { ok: true, signed: json, json: inner };
}

/** Whether next may replace current: a higher sequence, or the very same document again. */
export function order(current: SignedDocument | undefined, next: SignedDocument): 'newer' | 'same' | Refused {
  if (current === undefined || next.sequence > current.sequence) return 'newer';
  if (next.sequence < current.sequence) return REFUSED.rollback;
  return next.document === current.document ? 'same' : REFUSED.equivocation;
}
