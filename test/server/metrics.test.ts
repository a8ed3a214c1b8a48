// What the daemon exports: every drop reason from zero, accepted knocks and their latency, reloads by result, the users source (file today, any source's status object), and the kernel grant count read once per burst of scrapes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FRAME_DROP } from '../../src/protocol/frame.ts';
import { DROP } from '../../src/protocol/reasons.ts';
import type { AnyDrop } from '../../src/server/log.ts';
import { fileSourceStatus, kernelGrantCount, Metrics, usersSourceFamilies } from '../../src/server/metrics.ts';
import type { ScrapeInputs } from '../../src/server/metrics.ts';
import { render } from '../../src/server/prometheus.ts';
import { seriesValue } from '../helpers/scrape.ts';

const fileSource = { state: 'file', lastSyncMs: 1_764_500_000_123, version: 1 } as const;
const page = (m: Metrics, inputs: Partial<ScrapeInputs> = {}): string => render(m.families({ drops: new Map(), grantsOpen: 0, usersSource: fileSource, ...inputs }));
const value = seriesValue;

test('every drop reason of reasons.ts and frame.ts is a series from the start, at zero; counts come from the drop log', () => {
  const drops = new Map<AnyDrop, number>([[DROP.badMac, 7], [DROP.revoked, 2]]);
  const text = page(new Metrics(), { drops });
  for (const reason of [...Object.values(DROP), ...Object.values(FRAME_DROP)]) {
    const expected = reason === 'bad_mac' ? 7 : reason === 'revoked' ? 2 : 0;
    assert.equal(value(text, `sesame_knocks_dropped_total{reason="${reason}"}`), expected, reason);
  }
  assert.match(text, /^# TYPE sesame_knocks_dropped_total counter$/m);
});

test('accepted knocks and their grant latency; revoke latency; both histograms in seconds', () => {
  const m = new Metrics();
  assert.equal(value(page(m), 'sesame_knocks_accepted_total'), 0);
  m.granted(3.2);
  m.granted(40);
  m.revoked(7);
  const text = page(m);
  assert.equal(value(text, 'sesame_knocks_accepted_total'), 2);
  assert.equal(value(text, 'sesame_grant_latency_seconds_count'), 2);
  assert.equal(value(text, 'sesame_grant_latency_seconds_bucket{le="0.005"}'), 1);
  assert.equal(value(text, 'sesame_grant_latency_seconds_bucket{le="0.05"}'), 2);
  assert.ok(Math.abs((value(text, 'sesame_grant_latency_seconds_sum') ?? 0) - 0.0432) < 1e-9);
  assert.equal(value(text, 'sesame_revoke_latency_seconds_bucket{le="0.005"}'), 0);
  assert.equal(value(text, 'sesame_revoke_latency_seconds_bucket{le="0.01"}'), 1);
  assert.equal(value(text, 'sesame_revoke_latency_seconds_count'), 1);
  assert.match(text, /^# TYPE sesame_grant_latency_seconds histogram$/m);
});

test('reloads by document and result, all four from zero', () => {
  const m = new Metrics();
  m.reloaded('users', true);
  m.reloaded('users', true);
  m.reloaded('config', false);
  const text = page(m);
  assert.equal(value(text, 'sesame_reloads_total{document="users",result="ok"}'), 2);
  assert.equal(value(text, 'sesame_reloads_total{document="users",result="failed"}'), 0);
  assert.equal(value(text, 'sesame_reloads_total{document="config",result="ok"}'), 0);
  assert.equal(value(text, 'sesame_reloads_total{document="config",result="failed"}'), 1);
});

test('grants open: the kernel count when it was read, no series when it could not be', () => {
  assert.equal(value(page(new Metrics(), { grantsOpen: 3 }), 'sesame_grants_open'), 3);
  assert.doesNotMatch(page(new Metrics(), { grantsOpen: undefined }), /sesame_grants_open/);
});

test('the users source: one state set to 1, the last sync in seconds, the version; for the file and for a networked source', () => {
  const file = render(usersSourceFamilies(fileSource));
  assert.equal(value(file, 'sesame_users_source_state{state="file"}'), 1);
  assert.equal(value(file, 'sesame_users_source_state{state="connected"}'), 0);
  assert.equal(value(file, 'sesame_users_source_state{state="disconnected"}'), 0);
  assert.equal(value(file, 'sesame_users_last_sync_timestamp_seconds'), 1_764_500_000.123);
  assert.equal(value(file, 'sesame_users_document_version'), 1);
  const etcd = render(usersSourceFamilies({ state: 'disconnected', lastSyncMs: undefined, version: 4711 }));
  assert.equal(value(etcd, 'sesame_users_source_state{state="disconnected"}'), 1);
  assert.equal(value(etcd, 'sesame_users_source_state{state="file"}'), 0);
  assert.doesNotMatch(etcd, /sesame_users_last_sync_timestamp_seconds/, 'never synced: no timestamp rather than 0');
  assert.equal(value(etcd, 'sesame_users_document_version'), 4711);
});

test('the file source: loaded at start (version 1), then each load moves the time and the version', () => {
  let now = 1000;
  const f = fileSourceStatus(() => now);
  assert.deepEqual(f.status(), { state: 'file', lastSyncMs: 1000, version: 1 });
  now = 5000;
  f.loaded();
  assert.deepEqual(f.status(), { state: 'file', lastSyncMs: 5000, version: 2 });
});

test('kernel grant count: one listing for concurrent scrapes, reused for a second, read again after; a failure gives undefined', async () => {
  let now = 0;
  let listings = 0;
  let fail = false;
  const errors: unknown[] = [];
  const count = kernelGrantCount(async () => {
    listings++;
    await new Promise((r) => setImmediate(r));
    if (fail) throw new Error('nft gone');
    return 3;
  }, () => now, (err) => errors.push(err));
  assert.deepEqual(await Promise.all([count(), count(), count()]), [3, 3, 3]);
  assert.equal(listings, 1, 'concurrent scrapes share one listing');
  now = 999;
  assert.equal(await count(), 3);
  assert.equal(listings, 1, 'reused within the interval');
  now = 1000;
  fail = true;
  assert.equal(await count(), undefined);
  assert.equal(listings, 2);
  assert.equal(errors.length, 1);
  now = 2000;
  fail = false;
  assert.equal(await count(), 3, 'read again once the interval is over');
});
