/** The time range every page reads: a preset relative to now, or fixed days. */
export type RangePreset = 'today' | '7d' | '30d' | '90d' | 'custom';

export interface TimeRange {
  preset: RangePreset;
  /** ISO instants; for presets recomputed from now by resolveRange. */
  from: string;
  to: string;
}

const DAY = 86_400_000;

function startOfLocalDay(date: Date): Date {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

/** from = the start of the local day (n-1) days ago, to = the start of tomorrow: n whole days. */
export function resolveRange(range: TimeRange, now: Date = new Date()): { from: string; to: string } {
  if (range.preset === 'custom') return { from: range.from, to: range.to };
  const days = { today: 1, '7d': 7, '30d': 30, '90d': 90 }[range.preset];
  const tomorrow = startOfLocalDay(new Date(startOfLocalDay(now).getTime() + DAY + DAY / 2));
  const from = startOfLocalDay(new Date(tomorrow.getTime() - days * DAY + DAY / 2));
  return { from: from.toISOString(), to: tomorrow.toISOString() };
}

export function presetRange(preset: Exclude<RangePreset, 'custom'>, now: Date = new Date()): TimeRange {
  return { preset, ...resolveRange({ preset, from: '', to: '' }, now) };
}

/** A custom range from two local calendar days (YYYY-MM-DD), both included; null when invalid. */
export function customRange(fromDay: string, toDay: string): TimeRange | null {
  const from = new Date(`${fromDay}T00:00:00`);
  const last = new Date(`${toDay}T00:00:00`);
  if (Number.isNaN(from.getTime()) || Number.isNaN(last.getTime()) || last < from) return null;
  const to = startOfLocalDay(new Date(last.getTime() + DAY + DAY / 2));
  return { preset: 'custom', from: from.toISOString(), to: to.toISOString() };
}

/** Every day of a range as YYYY-MM-DD in the given time zone, so a chart shows days without events. */
export function daysOf(range: { from: string; to: string }, timeZone: string): string[] {
  const format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  const days: string[] = [];
  const end = new Date(range.to).getTime();
  for (let t = new Date(range.from).getTime(); t < end && days.length < 400; t += DAY / 4) {
    const day = format.format(new Date(t));
    if (days[days.length - 1] !== day) days.push(day);
  }
  return days;
}

export function localDay(iso: string): string {
  const date = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}
