import { CronExpressionParser } from 'cron-parser';

// Macros are expanded by the parser; @secondly would mean a 6-field (seconds) schedule.
const MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly', '@weekdays', '@weekends']);

/**
 * Why `schedule` cannot drive a periodic segment in `timeZone`, or null when it can. Accepted:
 * standard 5-field cron (minute hour day-of-month month day-of-week, with names, ranges, steps,
 * L and #) and the usual macros. Refused: a seconds field (a full evaluation every second is
 * never meant), hashed `H` fields (the parser would pick a different minute on every read), and
 * expressions with no next occurrence (30 February).
 */
export function scheduleError(schedule: string, timeZone: string): string | null {
  const trimmed = schedule.trim();
  if (trimmed.startsWith('@')) {
    if (!MACROS.has(trimmed.toLowerCase())) return `Unknown macro ${trimmed}; use one of ${[...MACROS].join(', ')} or 5 cron fields`;
  } else {
    const fields = trimmed.split(/\s+/);
    if (fields.length !== 5) {
      return `A schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "0 2 * * *" for 02:00 daily; got ${fields.length}`;
    }
    const hashed = fields.some((field) => field.split(',').some((part) => /^h(\(|\/|$)/i.test(part)));
    if (hashed) return 'Hashed (H) cron fields are not supported; give the minute and hour explicitly';
  }
  try {
    nextRunAfter(trimmed, timeZone, new Date());
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return null;
}

/** The first run strictly after `after`, reading the schedule as wall-clock time in `timeZone`. */
export function nextRunAfter(schedule: string, timeZone: string, after: Date): Date {
  const expression = CronExpressionParser.parse(schedule.trim(), { currentDate: after, tz: timeZone });
  const next = expression.next().toDate();
  if (Number.isNaN(next.getTime())) throw new Error(`No next run for "${schedule}" in time zone ${timeZone}`);
  return next;
}
