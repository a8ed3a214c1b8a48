// The Prometheus text format writer: exact output for counters, gauges and histograms (cumulative buckets, +Inf, sum, count), escaping, and refusal of bad names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatValue, Histogram, render } from '../../src/server/prometheus.ts';

test('counters and gauges: HELP, TYPE, then one line per sample with its labels', () => {
  const text = render([
    { name: 'x_total', help: 'Things.', type: 'counter', samples: [{ labels: { reason: 'a' }, value: 3 }, { labels: { reason: 'b' }, value: 0 }] },
    { name: 'y', help: 'A level.', type: 'gauge', samples: [{ value: 1.5 }] },
  ]);
  assert.equal(text, ['# HELP x_total Things.', '# TYPE x_total counter', 'x_total{reason="a"} 3', 'x_total{reason="b"} 0', '# HELP y A level.', '# TYPE y gauge', 'y 1.5', ''].join('\n'));
});

test('histogram: cumulative buckets with le, a +Inf bucket equal to the count, sum; a value on a bound falls in that bucket', () => {
  const h = new Histogram([0.01, 0.1, 1]);
  for (const v of [0.005, 0.01, 0.05, 0.5, 2, 3]) h.observe(v);
  const text = render([{ name: 'lat_seconds', help: 'Latency.', type: 'histogram', histogram: h.snapshot() }]);
  assert.equal(text, [
    '# HELP lat_seconds Latency.',
    '# TYPE lat_seconds histogram',
    'lat_seconds_bucket{le="0.01"} 2',
    'lat_seconds_bucket{le="0.1"} 3',
    'lat_seconds_bucket{le="1"} 4',
    'lat_seconds_bucket{le="+Inf"} 6',
    `lat_seconds_sum ${0.005 + 0.01 + 0.05 + 0.5 + 2 + 3}`, // summed in observation order, as the histogram does
    'lat_seconds_count 6',
    '',
  ].join('\n'));
  const empty = render([{ name: 'e', help: 'h', type: 'histogram', histogram: new Histogram([1]).snapshot() }]);
  assert.match(empty, /^e_bucket\{le="1"\} 0\ne_bucket\{le="\+Inf"\} 0\ne_sum 0\ne_count 0\n$/m);
});

test('a snapshot does not move when the histogram is observed afterwards', () => {
  const h = new Histogram([1]);
  h.observe(0.5);
  const snap = h.snapshot();
  h.observe(0.5);
  assert.deepEqual(snap.counts, [1, 0]);
  assert.deepEqual(h.snapshot().counts, [2, 0]);
});

test('label values escape backslash, double quote and line feed; HELP escapes backslash and line feed', () => {
  const text = render([{ name: 'z', help: 'a\\b\nc "q"', type: 'gauge', samples: [{ labels: { l: 'x\\y"z\nw' }, value: 1 }] }]);
  assert.equal(text, '# HELP z a\\\\b\\nc "q"\n# TYPE z gauge\nz{l="x\\\\y\\"z\\nw"} 1\n');
});

test('values: integers and decimals as JavaScript prints them, infinities as +Inf/-Inf, NaN', () => {
  assert.deepEqual([0, 42, 0.0025, 1e21, Infinity, -Infinity, NaN].map(formatValue), ['0', '42', '0.0025', '1e+21', '+Inf', '-Inf', 'NaN']);
});

test('bad or repeated metric names, bad label names and bad bucket bounds are refused (bugs, not output)', () => {
  const g = (name: string, labels?: Record<string, string>) => ({ name, help: 'h', type: 'gauge' as const, samples: [labels === undefined ? { value: 1 } : { labels, value: 1 }] });
  assert.throws(() => render([g('1abc')]), /bad or repeated metric name/);
  assert.throws(() => render([g('a-b')]), /bad or repeated metric name/);
  assert.throws(() => render([g('a'), g('a')]), /bad or repeated metric name "a"/);
  assert.throws(() => render([g('a', { 'bad-label': 'x' })]), /bad label name/);
  assert.throws(() => render([g('a', { __name__: 'x' })]), /bad label name/);
  assert.throws(() => new Histogram([]), /ascending/);
  assert.throws(() => new Histogram([1, 1]), /ascending/);
  assert.throws(() => new Histogram([2, 1]), /ascending/);
  assert.throws(() => new Histogram([1, Infinity]), /finite/);
});
