// The kernel grant count for /metrics, read on a worker thread: the count of what nft lists, with nft's JSON checked by the daemon's reader; nft's failures arrive as rejections. A stand-in nft prints fixed JSON, so no root is needed (the e2e metrics test reads the real kernel).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { countGrants } from '../../src/server/grant-count.ts';

const dir = mkdtempSync(join(tmpdir(), 'sesame-grant-count-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const grant = (address: string, i: number): unknown => [{ elem: { val: { concat: [address, 'tcp', 22] }, expires: 30, comment: `${i}`.padStart(32, '0') } }, 0x80000000 + i];

/** An executable that prints json when asked to list table inet TABLE, and fails like nft otherwise. */
function fakeNft(name: string, json: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, `#!${process.execPath}\nconst a = process.argv.slice(2).join(' ');\nif (a !== '-j list table inet sesame') { console.error('unexpected: ' + a); process.exit(1); }\nprocess.stdout.write(${JSON.stringify(JSON.stringify(json))});\n`);
  chmodSync(path, 0o755);
  return path;
}

test('counts the grants of both maps as nft lists them', async () => {
  const nft = fakeNft('nft-ok', { nftables: [
    { map: { name: 'allow4', elem: [grant('10.0.0.1', 1), grant('10.0.0.2', 2)] } },
    { map: { name: 'allow6', elem: [grant('fd00::1', 3)] } },
    { set: { name: 'admitted4', elem: [] } },
  ] });
  assert.equal(await countGrants('sesame', nft), 3);
});

test('an empty table counts 0; nft output the reader refuses, and an nft that cannot run, reject', async () => {
  assert.equal(await countGrants('sesame', fakeNft('nft-empty', { nftables: [{ table: { name: 'sesame' } }] })), 0);
  await assert.rejects(countGrants('sesame', fakeNft('nft-bad', { nftables: [{ map: { name: 'allow4', elem: [[{ elem: { val: { concat: ['not an address', 'tcp', 22] } } }, 1]] } }] })), /unexpected grant in nft -j output/);
  await assert.rejects(countGrants('sesame', join(dir, 'absent-nft')), /ENOENT/);
});
