// Branded byte types made by length-checking constructors, and the few encodings sesame prints. Trusts its callers for nothing: every constructor checks length.

import { KEY_BYTES } from './layout.ts';

declare const brand: unique symbol;
export type Bytes<Name extends string> = Uint8Array & { readonly [brand]: Name };

export type ServerPublicKey = Bytes<'ServerPublicKey'>;
export type ServerSecretKey = Bytes<'ServerSecretKey'>;
export type UserPublicKey = Bytes<'UserPublicKey'>;
export type UserSecretKey = Bytes<'UserSecretKey'>;
export type KeyId = Bytes<'KeyId'>;
export type Mac1Key = Bytes<'Mac1Key'>;

function brandBytes<Name extends string>(name: Name, length: number, bytes: Uint8Array): Bytes<Name> {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${name}: expected bytes`);
  if (bytes.length !== length) throw new RangeError(`${name}: expected ${length} bytes, got ${bytes.length}`);
  return bytes as Bytes<Name>;
}

export const serverPublicKey = (b: Uint8Array): ServerPublicKey => brandBytes('ServerPublicKey', KEY_BYTES.serverPublic, b);
export const serverSecretKey = (b: Uint8Array): ServerSecretKey => brandBytes('ServerSecretKey', KEY_BYTES.serverSecret, b);
export const userPublicKey = (b: Uint8Array): UserPublicKey => brandBytes('UserPublicKey', KEY_BYTES.userPublic, b);
export const userSecretKey = (b: Uint8Array): UserSecretKey => brandBytes('UserSecretKey', KEY_BYTES.userSecret, b);
export const keyId = (b: Uint8Array): KeyId => brandBytes('KeyId', KEY_BYTES.keyId, b);
export const mac1Key = (b: Uint8Array): Mac1Key => brandBytes('Mac1Key', KEY_BYTES.mac1Key, b);

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export const toBase64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** Strict standard base64 (with padding); undefined on anything else. */
export function fromBase64(s: string): Uint8Array | undefined {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'base64'));
}
