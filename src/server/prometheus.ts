// The Prometheus text exposition format (version 0.0.4) for the shapes sesame exports: counters, gauges and histograms with closed label sets. Input: sesame's own metric names, label values and numbers, never text from a packet.

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly labels?: Labels;
  readonly value: number;
}

export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending, without +Inf. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative), one more than bounds: the last is above every bound. */
  readonly counts: readonly number[];
  readonly sum: number;
}

export type Family =
  | { readonly name: string; readonly help: string; readonly type: 'counter' | 'gauge'; readonly samples: readonly Sample[] }
  | { readonly name: string; readonly help: string; readonly type: 'histogram'; readonly histogram: HistogramSnapshot };

/** Observations into fixed buckets: a few additions per observation, so it can sit on the packet path. */
export class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;

  constructor(bounds: readonly number[]) {
    if (bounds.length === 0 || bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (bounds[i - 1] ?? b)))) throw new Error(`histogram bounds must be finite and ascending: ${bounds.join(', ')}`);
    this.#bounds = [...bounds];
    this.#counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.#bounds.length && value > (this.#bounds[i] ?? Infinity)) i++;
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.#sum += value;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: this.#bounds, counts: [...this.#counts], sum: this.#sum };
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Go's ParseFloat reads these; Prometheus spells the infinities +Inf and -Inf. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function labelText(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  for (const [k] of entries) if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`bad label name "${k}"`);
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

function histogramLines(name: string, h: HistogramSnapshot): string[] {
  const lines: string[] = [];
  let cumulative = 0;
  h.bounds.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    lines.push(`${name}_bucket{le="${formatValue(bound)}"} ${cumulative}`);
  });
  cumulative += h.counts[h.bounds.length] ?? 0;
  lines.push(`${name}_bucket{le="+Inf"} ${cumulative}`, `${name}_sum ${formatValue(h.sum)}`, `${name}_count ${cumulative}`);
  return lines;
}

/** The page: for each family its HELP and TYPE lines, then its samples; a line feed after the last line. */
export function render(families: readonly Family[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name) || seen.has(f.name)) throw new Error(`bad or repeated metric name "${f.name}"`);
    seen.add(f.name);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === 'histogram') lines.push(...histogramLines(f.name, f.histogram));
    else for (const s of f.samples) lines.push(`${f.name}${labelText(s.labels)} ${formatValue(s.value)}`);
  }
  return `${lines.join('\n')}\n`;
}
