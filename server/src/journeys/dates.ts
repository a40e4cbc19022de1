import type { Trigger } from './definition.ts';
import { localParts, zonedTime } from './validate.ts';

/*
 * Date traits, pure: which calendar date a trait names, the instant of a time of day on it ± days
 * in a time zone, and when a date trigger fires in a window (yearly or once).
 */

type DateTrigger = Extract<Trigger, { kind: 'date' }>;

const DAY = 86_400_000;

/** The calendar date a trait value names: `YYYY-MM-DD`, or the date part of an ISO instant as written. */
export function parseDateTrait(value: unknown): { year: number; month: number; day: number } | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  return { year, month, day };
}

const isLeap = (year: number) => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;

/** The instant of `time` (HH:MM) on a calendar date + days in `timeZone`. 29 February in a common year is the 28th. */
export function dateAt(date: { year: number; month: number; day: number }, days: number, time: string, timeZone: string): Date {
  const day = date.month === 2 && date.day === 29 && !isLeap(date.year) ? 28 : date.day;
  const shifted = new Date(Date.UTC(date.year, date.month - 1, day + days));
  const [hour, minute] = time.split(':').map(Number) as [number, number];
  return zonedTime(shifted.getUTCFullYear(), shifted.getUTCMonth() + 1, shifted.getUTCDate(), hour, minute, timeZone);
}

/** The instants in (from, to] at which a date trigger fires for a trait value, in the profile's zone. */
export function dateOccurrences(value: unknown, trigger: Pick<DateTrigger, 'days' | 'time' | 'repeat'>, timeZone: string, from: Date, to: Date): Date[] {
  const date = parseDateTrait(value);
  if (!date) return [];
  const days = trigger.days ?? 0;
  const inWindow = (at: Date) => at.getTime() > from.getTime() && at.getTime() <= to.getTime();
  if (trigger.repeat === 'once') {
    const at = dateAt(date, days, trigger.time, timeZone);
    return inWindow(at) ? [at] : [];
  }
  const out: Date[] = [];
  // An offset of up to a year moves the occurrence into the neighbouring year.
  for (let year = localParts(from, timeZone).year - 2; year <= localParts(to, timeZone).year + 2; year++) {
    const at = dateAt({ ...date, year }, days, trigger.time, timeZone);
    if (inWindow(at)) out.push(at);
  }
  return out.sort((a, b) => a.getTime() - b.getTime());
}

/**
 * The trait values (MM-DD for yearly, YYYY-MM-DD for once) that can fire in (from, to]: every
 * calendar date in the window widened by a day each side for time zones, moved back by the offset.
 * A prefilter for SQL; dateOccurrences decides.
 */
export function candidateDates(trigger: Pick<DateTrigger, 'days' | 'repeat'>, from: Date, to: Date): string[] {
  const days = trigger.days ?? 0;
  const out = new Set<string>();
  for (let t = from.getTime() - 2 * DAY; t <= to.getTime() + 2 * DAY; t += DAY) {
    const d = new Date(t - days * DAY);
    const iso = d.toISOString().slice(0, 10);
    out.add(trigger.repeat === 'once' ? iso : iso.slice(5));
    // A 29 February birthday fires on the 28th in common years.
    if (trigger.repeat === 'yearly' && iso.slice(5) === '02-28') out.add('02-29');
  }
  return [...out];
}

/** The first instant after `after` at which a date trigger fires for a trait value, or null (no date, or a once date past). */
export function nextDateOccurrence(value: unknown, trigger: Pick<DateTrigger, 'days' | 'time' | 'repeat'>, timeZone: string, after: Date): Date | null {
  const date = parseDateTrait(value);
  if (!date) return null;
  const days = trigger.days ?? 0;
  if (trigger.repeat === 'once') {
    const at = dateAt(date, days, trigger.time, timeZone);
    return at.getTime() > after.getTime() ? at : null;
  }
  const from = localParts(after, timeZone).year;
  for (let year = from - 2; year <= from + 3; year++) {
    const at = dateAt({ ...date, year }, days, trigger.time, timeZone);
    if (at.getTime() > after.getTime()) return at;
  }
  return null;
}
