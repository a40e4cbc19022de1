/**
 * A segment's size at the end of each day of a range, walked back from its size now:
 * size(end of the last day) = size now − changes since the range ended, and each day before it
 * takes off that day's entries and adds back its exits. `days` are YYYY-MM-DD, oldest first.
 */
export function sizeSeries(
  current: number,
  changedSince: number,
  days: readonly string[],
  counts: ReadonlyArray<{ day: string; entered: number; exited: number }>,
): number[] {
  const netByDay = new Map(counts.map((count) => [count.day, count.entered - count.exited]));
  const series: number[] = new Array(days.length).fill(0);
  let size = current - changedSince;
  for (let i = days.length - 1; i >= 0; i--) {
    series[i] = Math.max(0, size);
    size -= netByDay.get(days[i]!) ?? 0;
  }
  return series;
}

/** Points of a sparkline polyline in a width × height box (the largest value at the top). */
export function sparklinePoints(values: readonly number[], width: number, height: number): string {
  if (values.length === 0) return '';
  const max = Math.max(...values);
  const min = Math.min(...values);
  const span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values.map((value, i) => `${Math.round(i * step * 10) / 10},${Math.round((height - ((value - min) / span) * height) * 10) / 10}`).join(' ');
}
