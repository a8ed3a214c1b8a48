// Loads the JSON Schemas shipped in src/schema/, compiles each once with ajv, and turns validation errors into operator messages naming file, JSON path and expectation.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { EXIT, OperatorError } from './errors.ts';

const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false });

/** dist/src/schema.js and src/schema.ts both reach <package>/src/schema/NAME. */
function schemaUrl(name: string): URL {
  const here = new URL('.', import.meta.url);
  return here.pathname.includes('/dist/src/') ? new URL(`../../src/schema/${name}`, import.meta.url) : new URL(`./schema/${name}`, import.meta.url);
}

export function compileSchema<T>(name: string): ValidateFunction<T> {
  const schema: unknown = JSON.parse(readFileSync(schemaUrl(name), 'utf8'));
  if (typeof schema !== 'object' || schema === null) throw new Error(`schema ${name} is not an object`);
  return ajv.compile<T>(schema);
}

function describe(e: ErrorObject): string {
  const p = e.params;
  if (e.keyword === 'additionalProperties' && 'additionalProperty' in p) return `unknown key "${String(p.additionalProperty)}"`;
  if (e.keyword === 'required' && 'missingProperty' in p) return `missing required key "${String(p.missingProperty)}"`;
  if (e.keyword === 'enum' && 'allowedValues' in p && Array.isArray(p.allowedValues)) return `expected one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  if (e.keyword === 'propertyNames' && 'propertyName' in p) return `name "${String(p.propertyName)}" is not allowed (letters, digits, _ . @ -; at most 64)`;
  if (e.keyword === 'pattern' && 'pattern' in p) return `does not match ${String(p.pattern)}`;
  return e.message ?? e.keyword;
}

function pointer(e: ErrorObject): string {
  const base = e.instancePath === '' ? '/' : e.instancePath;
  return e.keyword === 'propertyNames' && 'propertyName' in e.params ? `${base === '/' ? '' : base}/${String(e.params.propertyName)}` : base;
}

/** One line per problem: "FILE: /json/path: what was expected". */
export function schemaErrors(file: string, errors: readonly ErrorObject[] | null | undefined): string[] {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const e of errors ?? []) {
    if (e.keyword === 'if') continue;
    const line = `${file}: ${pointer(e)}: ${describe(e)}`;
    if (!seen.has(line)) lines.push(line);
    seen.add(line);
  }
  return lines;
}

/** Reads and parses a JSON file; operator errors name the file and the parse position. */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : '';
    throw new OperatorError(code === 'ENOENT' ? `${what} ${file} does not exist` : `cannot read ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`, EXIT.config);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new OperatorError(`${file}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`, EXIT.config);
  }
}

export function invalid(lines: readonly string[]): OperatorError {
  return new OperatorError(lines.join('\n'), EXIT.config);
}
