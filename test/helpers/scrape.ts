// Reads one series out of a Prometheus text page, for the metrics tests. Trusts the page it is given (sesame's own output).

/** The value of a series written exactly as on the page, e.g. 'sesame_knocks_dropped_total{reason="bad_mac"}'; undefined if absent. */
export function seriesValue(page: string, series: string): number | undefined {
  const line = page.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
