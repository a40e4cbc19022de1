// Calendar date, optional time (space or T), optional fraction, optional zone (Z, ±HH, ±HH:MM, ±HHMM).
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let found = formatters.get(zone);
  if (!found) {
    found = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, found);
  }
  return found;
}

function utcMs(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number {
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms));
  // Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear does not.
  date.setUTCFullYear(year);
  return date.getTime();
}

/** How far the zone's wall clock is ahead of UTC at the instant `instant` (ms). */
function zoneOffset(zone: string, instant: number): number {
  const parts: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  const wall = utcMs(parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second!, 0);
  return wall - (instant - (((instant % 1000) + 1000) % 1000));
}

const DAY_MS = 86_400_000;

/**
 * The instant at which the wall clock of `zone` shows the local time `local` (given as if it were
 * UTC). A time repeated when clocks go back resolves to its first occurrence; a time skipped when
 * they go forward is read with the offset from before the jump (02:30 in a 02:00→03:00 gap is 03:30).
 */
export function zonedTimeToInstant(local: number, zone: string): number {
  if (zone === 'UTC') return local;
  // Offset changes are far more than a day apart, so the offsets a day either side are the
  // only two that can apply.
  const offsetBefore = zoneOffset(zone, local - DAY_MS);
  const offsetAfter = zoneOffset(zone, local + DAY_MS);
  if (offsetBefore === offsetAfter) return local - offsetBefore;
  const before = local - offsetBefore;
  const after = local - offsetAfter;
  const fits = (instant: number) => instant + zoneOffset(zone, instant) === local;
  if (fits(before) && fits(after)) return Math.min(before, after);
  if (fits(before)) return before;
  if (fits(after)) return after;
  return before;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : MONTH_DAYS[month - 1]!;
}

function zoneSuffixOffset(suffix: string): number {
  if (suffix.toUpperCase() === 'Z') return 0;
  const sign = suffix.startsWith('-') ? -1 : 1;
  const digits = suffix.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
  return sign * (hours * 60 + minutes) * 60_000;
}

/**
 * Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][zone]` to an instant. Without a zone suffix the time
 * is naive and read as wall-clock time in `timeZone`. Returns null for anything else, including
 * impossible calendar values (2011-02-30, 25:00).
 */
export function parseDateTime(text: string, timeZone: string): Date | null {
  const match = DATE_TIME.exec(text.trim());
  if (!match) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const ms = fraction ? Math.floor(Number(`0.${fraction}`) * 1000) : 0;
  const local = utcMs(year, month, day, hour, minute, second, ms);
  const instant = zone ? local - zoneSuffixOffset(zone) : zonedTimeToInstant(local, timeZone);
  const date = new Date(instant);
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * parseDateTime with a bounded memo: exports repeat the same timestamps across many rows (an
 * invoice's lines share one), and the zone lookup is the expensive part.
 */
export function createDateParser(timeZone: string, cacheSize = 20_000): (text: string) => Date | null {
  const cache = new Map<string, number | null>();
  return (text) => {
    const cached = cache.get(text);
    if (cached !== undefined) return cached === null ? null : new Date(cached);
    const parsed = parseDateTime(text, timeZone);
    if (cache.size >= cacheSize) cache.clear();
    cache.set(text, parsed ? parsed.getTime() : null);
    return parsed;
  };
}

/** True for a date-time string without a zone suffix, which needs a time zone to mean an instant. */
export function isNaiveDateTime(text: string): boolean {
  const match = DATE_TIME.exec(text.trim());
  return match !== null && match[8] === undefined;
}
