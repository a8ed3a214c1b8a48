// The one Ajv instance: compiles every schema once (the files in src/schema/ and the knock payload's), and turns validation errors into operator messages naming file, JSON path and expectation.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { EXIT, OperatorError } from './errors.ts';
import { jsonPath } from './files.ts';

const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false, verbose: true });
// Binary fields of the knock payload (msgpack bin): a Uint8Array of one of the listed lengths.
ajv.addKeyword({
  keyword: 'byteLengths',
  schemaType: 'array',
  validate: (lengths: readonly number[], data: unknown) => data instanceof Uint8Array && lengths.includes(data.length),
});

export type { ValidateFunction };

/** dist/src/schema.js and src/schema.ts both reach <package>/src/schema/NAME. */
function schemaUrl(name: string): URL {
  const here = new URL('.', import.meta.url);
  return here.pathname.includes('/dist/src/') ? new URL(`../../src/schema/${name}`, import.meta.url) : new URL(`./schema/${name}`, import.meta.url);
}

/** A schema shipped in src/schema/ (config, users, client). */
export function compileSchemaFile<T>(name: string): ValidateFunction<T> {
  const schema: unknown = JSON.parse(readFileSync(schemaUrl(name), 'utf8'));
  if (typeof schema !== 'object' || schema === null) throw new Error(`schema ${name} is not an object`);
  return ajv.compile<T>(schema);
}

/** A schema defined in code (the knock payload). */
export function compileSchema<T>(schema: object): ValidateFunction<T> {
  return ajv.compile<T>(schema);
}

/**
 * How a location is written: `pointer` is a JSON pointer ("/users/alice/ports"), for the server's files, whose errors
 * read like "FILE: /path: problem"; `path` is a JavaScript-like path ("profiles.prod.ports[0]"), for the client config.
 */
export type PathStyle = 'pointer' | 'path';

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

function allowedKeys(schema: unknown): string[] {
  if (typeof schema !== 'object' || schema === null || !('properties' in schema)) return [];
  const props = schema.properties;
  return typeof props === 'object' && props !== null ? Object.keys(props) : [];
}

const descriptionOf = (schema: unknown): string | undefined =>
  typeof schema === 'object' && schema !== null && 'description' in schema && typeof schema.description === 'string' ? schema.description : undefined;

/** One error as "location: problem". */
function describe(e: ErrorObject, style: PathStyle): string {
  const p: Record<string, unknown> = e.params;
  const where = (pointer: string): string => (style === 'pointer' ? (pointer === '' ? '/' : pointer) : jsonPath(pointer));
  if (e.keyword === 'additionalProperties') {
    const key = String(p['additionalProperty']);
    if (style === 'pointer') return `${where(e.instancePath)}: unknown key "${key}"`;
    return `${where(`${e.instancePath}/${escapePointer(key)}`)}: unknown key (allowed here: ${allowedKeys(e.parentSchema).join(', ')})`;
  }
  if (e.keyword === 'required') return `${where(e.instancePath)}: missing required key "${String(p['missingProperty'])}"`;
  if (e.keyword === 'enum' && Array.isArray(p['allowedValues'])) {
    const values = p['allowedValues'].map((v) => JSON.stringify(v)).join(', ');
    return `${where(e.instancePath)}: ${style === 'pointer' ? 'expected' : 'must be'} one of ${values}`;
  }
  if (e.keyword === 'propertyNames') {
    const name = String(p['propertyName']);
    if (style === 'pointer') return `${where(`${e.instancePath}/${escapePointer(name)}`)}: name "${name}" is not allowed (letters, digits, _ . @ -; at most 64)`;
    return `${where(e.instancePath)}: ${JSON.stringify(name)} is not a valid name (expected ${descriptionOf(e.schema) ?? 'a valid name'})`;
  }
  if (e.keyword === 'pattern' && style === 'pointer') return `${where(e.instancePath)}: does not match ${String(p['pattern'])}`;
  const alternatives = e.keyword === 'oneOf' ? requiredAlternatives(e.schema) : undefined;
  if (alternatives !== undefined) return `${where(e.instancePath)}: give exactly one of ${alternatives.map((k) => `"${k}"`).join(', ')}`;
  const expected = style === 'path' ? descriptionOf(e.parentSchema) : undefined;
  return `${where(e.instancePath)}: ${e.message ?? e.keyword}${expected === undefined ? '' : ` (expected ${expected})`}`;
}

/** For a oneOf whose branches each only require one key (serverKey or serverKeys): those keys. */
function requiredAlternatives(schema: unknown): string[] | undefined {
  if (!Array.isArray(schema)) return undefined;
  const keys = schema.map((b: unknown) => (typeof b === 'object' && b !== null && 'required' in b && Array.isArray(b.required) && b.required.length === 1 ? String(b.required[0]) : undefined));
  return keys.every((k) => k !== undefined) ? keys : undefined;
}

/** Every problem, once each, as "FILE: location: problem" (pointer style) or "location: problem" (path style). */
export function schemaErrors(file: string, errors: readonly ErrorObject[] | null | undefined, style: PathStyle = 'pointer'): string[] {
  const lines = new Set<string>();
  for (const e of errors ?? []) {
    // `if` repeats its branch's error; errors inside propertyNames repeat the one that names the key.
    if (e.keyword === 'if' || (e.propertyName !== undefined && e.keyword !== 'propertyNames')) continue;
    // A branch of a oneOf that names its alternatives failed: the oneOf's own line says it better.
    if (e.schemaPath.includes('/oneOf/') && (errors ?? []).some((o) => o.keyword === 'oneOf' && o.instancePath === e.instancePath && requiredAlternatives(o.schema) !== undefined)) continue;
    lines.add(style === 'pointer' ? `${file}: ${describe(e, style)}` : describe(e, style));
  }
  return [...lines];
}

export function invalid(lines: readonly string[]): OperatorError {
  return new OperatorError(lines.join('\n'), EXIT.config);
}
