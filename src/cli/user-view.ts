// `sesame user list` and `sesame user show`: the users document as a table, a page or JSON, with every string from the file printed escaped. Input: a validated users document.
import { EXIT, OperatorError } from '../errors.ts';
import type { UsersFile } from '../server/users.ts';
import { revokedViews, userViews } from '../server/users-edit.ts';
import { printable, printableJson } from '../text.ts';

function table(unsafe: string[][]): string {
  const rows = unsafe.map((r) => r.map(printable));
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function list(doc: UsersFile, json: boolean): number {
  if (json) {
    process.stdout.write(`${printableJson({ users: userViews(doc), revoked: revokedViews(doc) })}\n`);
    return EXIT.ok;
  }
  const rows = [['USER', 'STATUS', 'KEYS', 'PORTS', 'MAX', 'FROM']];
  for (const v of userViews(doc)) {
    rows.push([v.name, v.keys.length > 0 ? 'active' : 'no keys', v.keys.map((k) => k.keyId.slice(0, 12)).join(',') || '-', v.ports.join(','), v.maxDurationSeconds === undefined ? '-' : `${v.maxDurationSeconds}s`, v.from.join(',') || 'any']);
  }
  process.stdout.write(`${table(rows)}\n`);
  const revoked = revokedViews(doc);
  if (revoked.length > 0) {
    process.stdout.write(`\nrevoked keys:\n${table([['KEY', 'USER', 'AT', 'BY', 'REASON'], ...revoked.map((r) => [r.keyId.slice(0, 12), r.user, r.at, r.by, r.reinstated === undefined ? r.reason : `${r.reason}${r.reason === '' ? '' : '; '}reinstated ${r.reinstated.at}`])])}\n`);
  }
  return EXIT.ok;
}

export function show(doc: UsersFile, name: string, json: boolean): number {
  const v = userViews(doc).find((u) => u.name === name);
  if (v === undefined) throw new OperatorError(`no user "${name}" (sesame user list shows who there is)`, EXIT.config);
  const revoked = revokedViews(doc).filter((r) => r.user === name);
  if (json) {
    process.stdout.write(`${printableJson({ ...v, revoked })}\n`);
    return EXIT.ok;
  }
  const lines = [
    `user ${v.name}`,
    `  ports         ${v.ports.join(', ')}`,
    `  max duration  ${v.maxDurationSeconds === undefined ? 'server maximum' : `${v.maxDurationSeconds} s`}`,
    `  from          ${v.from.join(', ') || 'any source'}`,
    `  open other    ${v.mayOpenOtherAddress ? 'yes (may name another address to open)' : 'no'}`,
    `  keys          ${v.keys.length === 0 ? 'none active' : ''}`,
    ...v.keys.map((k) => `    ${k.keyId}  ${k.comment}${k.added === undefined ? '' : `  (added ${k.added})`}`),
    ...(revoked.length === 0 ? [] : ['  revoked', ...revoked.map((r) => `    ${r.keyId}  ${r.comment}  ${r.at} by ${r.by}${r.reason === '' ? '' : `: ${r.reason}`}${r.reinstated === undefined ? '' : `; reinstated ${r.reinstated.at}${r.reinstated.by === undefined ? '' : ` by ${r.reinstated.by}`}`}`)]),
  ];
  process.stdout.write(`${lines.map(printable).join('\n')}\n`);
  return EXIT.ok;
}
