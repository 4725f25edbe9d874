// Plain-text tables and small statistics for benchmark reports.

/** A table with a header row and a rule under it; columns in `rightCols` are right-aligned. */
export function table(rows: string[][], rightCols: Set<number>): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (rightCols.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function geomean(xs: number[]): number | null {
  if (xs.length === 0) return null;
  return Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}

/** The median element by `key` (the lower middle one for an even count); null for none. */
export function medianBy<T>(xs: readonly T[], key: (x: T) => number): T | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => key(a) - key(b));
  return sorted[(sorted.length - 1) >> 1];
}
