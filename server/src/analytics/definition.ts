import { Type, type Static } from '@sinclair/typebox';
import { ConditionSchema, PropertyFilterSchema, type EventMatch } from '../segments/ast.ts';

/*
 * The shared query definition every analysis starts from: which events (name and property
 * conditions, reusing the segment language's filters), which time range (in the workspace's time
 * zone), which profiles (a segment, by key or inline definition or text), and how to break the
 * answer down. Pure: schemas and the time-zone maths, no I/O.
 */

const Path = Type.String({ minLength: 1, maxLength: 300, pattern: '^[^.]+(\\.[^.]+)*$' });

export const EventSelectorSchema = Type.Object(
  {
    event: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Event name (page/screen name for those types); absent: every page/screen view' })),
    type: Type.Optional(Type.Union([Type.Literal('track'), Type.Literal('page'), Type.Literal('screen')], { default: 'track' })),
    filters: Type.Optional(Type.Array(PropertyFilterSchema, { maxItems: 20, description: 'Property conditions (segment language operators); a path starting with context. reads the context' })),
  },
  { additionalProperties: false },
);
export type EventSelector = Static<typeof EventSelectorSchema>;

const DateOrInstant = Type.String({
  minLength: 10,
  maxLength: 40,
  description: 'A date (YYYY-MM-DD, a whole day in the workspace time zone; `to` inclusive) or an ISO instant with zone (`to` exclusive)',
});
export const TimeRangeSchema = Type.Union([
  Type.Object({ from: DateOrInstant, to: DateOrInstant }, { additionalProperties: false }),
  Type.Object(
    { lastDays: Type.Integer({ minimum: 1, maximum: 3660, description: 'Today and the N − 1 days before it (workspace time zone), up to now' }) },
    { additionalProperties: false },
  ),
]);
export type TimeRange = Static<typeof TimeRangeSchema>;

export const BreakdownSchema = Type.Union([
  Type.Object({ kind: Type.Literal('property'), property: Path }, { additionalProperties: false, description: 'An event property (context.… reads the context)' }),
  Type.Object({ kind: Type.Literal('trait'), trait: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false, description: "The profile's current trait" }),
  Type.Object({ kind: Type.Literal('source') }, { additionalProperties: false, description: 'The kind of source the event came from (web, app, store …)' }),
]);
export type Breakdown = Static<typeof BreakdownSchema>;

export const SegmentFilterSchema = Type.Object(
  {
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'A segment of the workspace (its current members)' })),
    definition: Type.Optional(ConditionSchema),
    text: Type.Optional(Type.String({ minLength: 1, maxLength: 20_000, description: 'A condition in the segment language' })),
  },
  { additionalProperties: false, description: 'Only profiles in this segment; give one of key, definition, text' },
);
export type SegmentFilter = Static<typeof SegmentFilterSchema>;

export const SOURCE_KINDS = ['web', 'app', 'mini_program', 'server', 'store', 'call_centre', 'crm_import', 'warehouse'] as const;

/** What every analysis shares. */
export const QueryBaseProperties = {
  range: TimeRangeSchema,
  segment: Type.Optional(SegmentFilterSchema),
  sourceKinds: Type.Optional(Type.Array(Type.Union(SOURCE_KINDS.map((kind) => Type.Literal(kind))), { minItems: 1, maxItems: 8, description: 'Only events from sources of these kinds' })),
  timeBudgetMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, description: 'Give up (503 query_timeout) after this long; default 20,000' })),
};

export const IntervalSchema = Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('week'), Type.Literal('month')]);
export type Interval = Static<typeof IntervalSchema>;

export const WindowSchema = Type.Object(
  { amount: Type.Integer({ minimum: 1, maximum: 10_000 }), unit: Type.Union([Type.Literal('minutes'), Type.Literal('hours'), Type.Literal('days'), Type.Literal('weeks')]) },
  { additionalProperties: false },
);
export type AnalysisWindow = Static<typeof WindowSchema>;
const WINDOW_MS = { minutes: 60_000, hours: 3_600_000, days: 86_400_000, weeks: 604_800_000 } as const;
export const windowMs = (window: AnalysisWindow): number => window.amount * WINDOW_MS[window.unit];
/** A window as a PostgreSQL interval literal. */
export const windowInterval = (window: AnalysisWindow): string => `${window.amount} ${window.unit}`;

/** The segment language's event match for a selector. */
export function eventMatchOf(selector: EventSelector): EventMatch {
  const type = selector.type ?? 'track';
  return { type, ...(selector.event !== undefined ? { name: selector.event } : {}), filters: selector.filters ?? [] };
}

/** A human label for a selector: the event name, or `page`/`screen` for every view. */
export function selectorLabel(selector: EventSelector): string {
  return selector.event ?? `any ${selector.type ?? 'track'}`;
}

// ---- Time-zone maths --------------------------------------------------------------------------

export class InvalidTimeZoneError extends RangeError {}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new InvalidTimeZoneError(`Unknown time zone "${timeZone}"`);
    }
    formatters.set(timeZone, format);
  }
  return format;
}

export interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall-clock time in `timeZone` at instant `ms`. */
export function localTimeOf(ms: number, timeZone: string): LocalTime {
  const parts = Object.fromEntries(formatter(timeZone).formatToParts(new Date(ms)).map((part) => [part.type, part.value]));
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

/** Offset of `timeZone` from UTC at instant `ms`, in milliseconds (east positive). */
function offsetAt(ms: number, timeZone: string): number {
  const local = localTimeOf(ms, timeZone);
  const asUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant a wall-clock time happens in `timeZone`. In a spring-forward gap the time does not
 * exist and the instant after the gap is returned; in a fall-back overlap, the earlier one.
 */
export function instantOfLocal(local: Pick<LocalTime, 'year' | 'month' | 'day'> & Partial<LocalTime>, timeZone: string): number {
  const wall = Date.UTC(local.year, local.month - 1, local.day, local.hour ?? 0, local.minute ?? 0, local.second ?? 0);
  const first = wall - offsetAt(wall, timeZone);
  const second = wall - offsetAt(first, timeZone);
  if (first === second) return first;
  // DST edge: take the candidate whose wall time is right; in a gap, the later one.
  const candidates = [first, second].filter((ms) => wall - offsetAt(ms, timeZone) === ms);
  return candidates.length > 0 ? Math.min(...candidates) : Math.max(first, second);
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const INSTANT_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

function parseLocalDate(text: string, field: string): { year: number; month: number; day: number } {
  const match = DATE_ONLY.exec(text)!;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) {
    throw new RangeError(`${field}: ${text} is not a calendar date`);
  }
  return { year, month, day };
}

export interface ResolvedRange {
  /** Inclusive. */
  fromMs: number;
  /** Exclusive. */
  toMs: number;
}

/** Adds whole days to a calendar date. */
export function addDays(date: { year: number; month: number; day: number }, days: number): { year: number; month: number; day: number } {
  const moved = new Date(Date.UTC(date.year, date.month - 1, date.day + days));
  return { year: moved.getUTCFullYear(), month: moved.getUTCMonth() + 1, day: moved.getUTCDate() };
}

/** The instants a range covers: dates are whole local days (`to` inclusive), instants are exact (`to` exclusive). */
export function resolveRange(range: TimeRange, timeZone: string, now: Date): ResolvedRange {
  if ('lastDays' in range) {
    const today = localTimeOf(now.getTime(), timeZone);
    return { fromMs: instantOfLocal(addDays(today, 1 - range.lastDays), timeZone), toMs: now.getTime() + 1 };
  }
  const bound = (text: string, field: 'range.from' | 'range.to'): number => {
    if (DATE_ONLY.test(text)) {
      const date = parseLocalDate(text, field);
      return instantOfLocal(field === 'range.to' ? addDays(date, 1) : date, timeZone);
    }
    if (!INSTANT_WITH_ZONE.test(text) || Number.isNaN(Date.parse(text))) {
      throw new RangeError(`${field}: "${text}" is neither a date (YYYY-MM-DD) nor an ISO instant with a zone`);
    }
    return Date.parse(text);
  };
  const fromMs = bound(range.from, 'range.from');
  const toMs = bound(range.to, 'range.to');
  if (toMs <= fromMs) throw new RangeError('range: to must be after from');
  return { fromMs, toMs };
}

/** The label of the period (in `timeZone`) an instant falls in: `YYYY-MM-DD` of its first day, or `YYYY-MM-DDTHH:00` for hours. Weeks start on Monday (ISO). */
export function periodLabel(ms: number, interval: Interval, timeZone: string): string {
  const local = localTimeOf(ms, timeZone);
  let date: { year: number; month: number; day: number } = local;
  if (interval === 'month') date = { year: local.year, month: local.month, day: 1 };
  if (interval === 'week') {
    const weekday = (new Date(Date.UTC(local.year, local.month - 1, local.day)).getUTCDay() + 6) % 7;
    date = addDays(local, -weekday);
  }
  const text = `${date.year}-${pad(date.month)}-${pad(date.day)}`;
  return interval === 'hour' ? `${text}T${pad(local.hour)}:00` : text;
}
const pad = (n: number) => String(n).padStart(2, '0');

/** Every period label from the one holding `fromMs` to the one holding `toMs − 1`, in order. */
export function periodLabels(range: ResolvedRange, interval: Interval, timeZone: string, limit = 5000): string[] {
  const labels: string[] = [];
  const last = periodLabel(range.toMs - 1, interval, timeZone);
  let label = periodLabel(range.fromMs, interval, timeZone);
  for (;;) {
    labels.push(label);
    if (label === last) return labels;
    if (labels.length >= limit) throw new RangeError(`The range holds more than ${limit} ${interval}s; choose a coarser interval`);
    label = nextPeriod(label, interval);
  }
}

/** The label of the period after `label`. */
export function nextPeriod(label: string, interval: Interval): string {
  const [year, month, day] = label.slice(0, 10).split('-').map(Number) as [number, number, number];
  if (interval === 'hour') {
    const hour = Number(label.slice(11, 13));
    if (hour < 23) return `${label.slice(0, 10)}T${pad(hour + 1)}:00`;
    const next = addDays({ year, month, day }, 1);
    return `${next.year}-${pad(next.month)}-${pad(next.day)}T00:00`;
  }
  const next =
    interval === 'month' ? { year: month === 12 ? year + 1 : year, month: month === 12 ? 1 : month + 1, day: 1 } : addDays({ year, month, day }, interval === 'week' ? 7 : 1);
  return `${next.year}-${pad(next.month)}-${pad(next.day)}`;
}

/** Whole periods from label `a` to label `b` (b − a), both day/week/month labels of the same interval. */
export function periodsBetween(a: string, b: string, interval: Exclude<Interval, 'hour'>): number {
  const [ya, ma, da] = a.split('-').map(Number) as [number, number, number];
  const [yb, mb, db] = b.split('-').map(Number) as [number, number, number];
  if (interval === 'month') return (yb - ya) * 12 + (mb - ma);
  const days = Math.round((Date.UTC(yb, mb - 1, db) - Date.UTC(ya, ma - 1, da)) / 86_400_000);
  return interval === 'week' ? Math.floor(days / 7) : days;
}

/** The SQL format of a period label (matching periodLabel) for `to_char(date_trunc(interval, local), …)`. */
export const PERIOD_FORMAT: Record<Interval, string> = {
  hour: 'YYYY-MM-DD"T"HH24:MI',
  day: 'YYYY-MM-DD',
  week: 'YYYY-MM-DD',
  month: 'YYYY-MM-DD',
};
