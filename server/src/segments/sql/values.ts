import { parseInstant } from '../../ingest/normalize.ts';
import { durationMs, type Duration, type Scalar, type ValueOperator } from '../ast.ts';
import { postgresPattern } from './regex.ts';

/*
 * SQL for the value rules of ast.ts ("Shared semantics"): every ValueOperator and numeric test as a
 * boolean expression over a jsonb (or double) expression. Every expression here is total: true or
 * false, never null, also for an absent value (SQL null or JSON null), so callers can negate and
 * combine them freely. Literals are always bound parameters.
 */

/** What SQL fragments need from the query being built: parameters, the workspace and the clock. */
export interface Scope {
  /** Adds a parameter and returns its placeholder with a cast, e.g. `$3::text`. */
  bind(value: unknown, type: string): string;
  /** Placeholder of the workspace id. */
  workspace: string;
  /** Milliseconds since the epoch. */
  now: number;
  /** Placeholder of `now` as timestamptz. */
  nowParam: string;
  segmentIds: ReadonlyMap<string, string>;
  /** ` and <column> in the compile context's profile id range`, or '' when it has none (or no such method). */
  inRange?(column: string): string;
}

const DAY_MS = 86_400_000;

export function bindInstant(scope: Scope, ms: number): string {
  return scope.bind(new Date(ms).toISOString(), 'timestamptz');
}

/** A literal instant of a definition. A bad one is a definition error, as in the evaluator. */
export function literalInstant(value: string): number {
  const ms = parseInstant(value);
  if (ms === null) throw new Error(`Invalid instant in segment definition: ${JSON.stringify(value)} (expected ISO-8601)`);
  return ms;
}

/** The jsonb expression `root` walked by path parts, like the evaluator's walkJson (PostgreSQL's #>). */
export function jsonPath(scope: Scope, root: string, parts: readonly string[]): string {
  return parts.length === 0 ? root : `(${root} #> ${scope.bind(parts, 'text[]')})`;
}

// PostgreSQL text cannot hold NUL and jsonb refuses lone surrogates, so no stored string contains
// them: a literal that does can never match, and binding it would fail the whole query.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
function storable(text: string): boolean {
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

const truth = (sql: string): string => `coalesce(${sql}, false)`;

/**
 * A jsonb expression as a double when it is a number (ast.ts Numbers), else null. A JSON number
 * inside the range of a double is cast directly; strings and extreme magnitudes go through
 * segment_json_number, which never fails.
 */
export function numberOf(value: string): string {
  const numeric = `(${value})::numeric`;
  return (
    `case jsonb_typeof(${value}) when 'number' then case when abs(${numeric}) between 1e-300 and 1e300 or ${numeric} = 0 ` +
    `then (${value})::float8 else segment_json_number(${value}) end when 'string' then segment_json_number(${value}) end`
  );
}

// The two shapes most dates have (a date, and JavaScript's toISOString), valid by their pattern
// alone (real month lengths; 29 February, which needs a leap year, and years before 0100 are left
// to the general path), read with PostgreSQL's own casts. Any other string goes through
// segment_text_instant, which reads every shape but costs a PL/pgSQL call per row.
const MONTH_DAY = '((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)';
const DATE_ONLY = `'^[0-9]{4}-${MONTH_DAY}$'`;
const UTC_MILLISECONDS = `'^[0-9]{4}-${MONTH_DAY}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?Z$'`;

/** A jsonb expression as timestamptz when it is a date (ast.ts Dates), else null. */
export function instantOf(value: string): string {
  const text = `(${value} #>> '{}')`;
  const fromYear100 = `${text} >= '0100' collate "C"`;
  return (
    `case when jsonb_typeof(${value}) = 'string' then case ` +
    `when ${text} ~ ${DATE_ONLY} and ${fromYear100} then ${text}::date::timestamp at time zone 'UTC' ` +
    `when ${text} ~ ${UTC_MILLISECONDS} and ${fromYear100} then ${text}::timestamptz ` +
    `else segment_text_instant(${text}) end end`
  );
}

/** The UTC month-day ('MM-DD') of a jsonb value that is a date; a date alone is read without parsing it. */
export function monthDayOf(value: string): string {
  const text = `(${value} #>> '{}')`;
  return (
    `case when jsonb_typeof(${value}) = 'string' and ${text} ~ ${DATE_ONLY} and ${text} >= '0100' collate "C" then substr(${text}, 6, 5) ` +
    `else to_char(${instantOf(value)} at time zone 'UTC', 'MM-DD') end`
  );
}

function isString(value: string): string {
  return `jsonb_typeof(${value}) = 'string'`;
}

/** `value` equals one of the literals (strings and booleans as JSON, numbers as doubles). */
function equalsAny(scope: Scope, value: string, literals: readonly Scalar[]): string {
  const jsonLiterals = literals.filter((literal) => typeof literal !== 'number' && (typeof literal !== 'string' || storable(literal)));
  const numbers = literals.filter((literal): literal is number => typeof literal === 'number');
  const tests: string[] = [];
  if (jsonLiterals.length === 1) tests.push(`${value} = ${scope.bind(JSON.stringify(jsonLiterals[0]), 'jsonb')}`);
  if (jsonLiterals.length > 1) tests.push(`${value} = any(${scope.bind(jsonLiterals.map((literal) => JSON.stringify(literal)), 'jsonb[]')})`);
  if (numbers.length === 1) tests.push(`${numberOf(value)} = ${scope.bind(numbers[0], 'float8')}`);
  if (numbers.length > 1) tests.push(`${numberOf(value)} = any(${scope.bind(numbers, 'float8[]')})`);
  if (tests.length === 0) return 'false';
  return truth(tests.length === 1 ? tests[0]! : `(${tests.join(' or ')})`);
}

/** Whether the operator holds for an absent value: only neq, not_in and missing do. */
export function holdsWhenAbsent(operator: ValueOperator): boolean {
  return operator.op === 'neq' || operator.op === 'not_in' || operator.op === 'missing';
}

/** A total boolean: the operator applied to the jsonb expression `value` (SQL null = absent). */
export function valueTest(scope: Scope, value: string, operator: ValueOperator): string {
  switch (operator.op) {
    case 'eq':
      return equalsAny(scope, value, [operator.value]);
    case 'neq':
      return `not ${equalsAny(scope, value, [operator.value])}`;
    case 'in':
      return equalsAny(scope, value, operator.values);
    case 'not_in':
      return `not ${equalsAny(scope, value, operator.values)}`;
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return truth(`${numberOf(value)} ${COMPARISON[operator.op]} ${scope.bind(operator.value, 'float8')}`);
    case 'between':
      return truth(`${numberOf(value)} between ${scope.bind(operator.low, 'float8')} and ${scope.bind(operator.high, 'float8')}`);
    case 'contains': {
      if (!storable(operator.value)) return 'false';
      const literal = scope.bind(operator.value, 'text');
      return truth(
        `case jsonb_typeof(${value}) when 'string' then strpos(${value} #>> '{}', ${literal}) > 0 ` +
          `when 'array' then ${value} @> jsonb_build_array(${literal}) else false end`,
      );
    }
    case 'starts_with':
      if (!storable(operator.value)) return 'false';
      return truth(`${isString(value)} and starts_with(${value} #>> '{}', ${scope.bind(operator.value, 'text')})`);
    case 'ends_with': {
      if (!storable(operator.value)) return 'false';
      const literal = scope.bind(operator.value, 'text');
      return truth(`${isString(value)} and right(${value} #>> '{}', length(${literal})) = ${literal}`);
    }
    case 'matches':
      if (!storable(operator.pattern)) return 'false';
      return truth(`${isString(value)} and (${value} #>> '{}') ~ ${scope.bind(postgresPattern(operator.pattern), 'text')}`);
    case 'exists':
      return truth(`jsonb_typeof(${value}) <> 'null'`);
    case 'missing':
      return `not ${truth(`jsonb_typeof(${value}) <> 'null'`)}`;
    case 'before': {
      const literal = literalInstant(operator.value);
      return datePrefiltered(scope, value, undefined, literal, truth(`${instantOf(value)} < ${bindInstant(scope, literal)}`));
    }
    case 'after': {
      const literal = literalInstant(operator.value);
      return datePrefiltered(scope, value, literal, undefined, truth(`${instantOf(value)} > ${bindInstant(scope, literal)}`));
    }
    case 'within_last':
    case 'within_next': {
      const span = durationMs(operator.duration);
      const [from, to] = operator.op === 'within_last' ? [scope.now - span, scope.now] : [scope.now, scope.now + span];
      return datePrefiltered(scope, value, from, to, instantWindowTest(scope, instantOf(value), operator.op, operator.duration));
    }
    case 'anniversary_within_next':
      return anniversaryTest(scope, value, operator.duration);
  }
}

/**
 * `test` (on a date value) guarded by a cheap necessary condition on the text: every date string
 * starts with its local date D (YYYY-MM-DD), and the instant lies in (D − 24 h, D + 48 h) (a time
 * of day under 24 h, an offset under 24 h either way). So an instant after `from` needs D on or
 * after the date of `from` − 1 day, one before `to` D on or before the date of `to` + 1 day − 1 ms,
 * compared as text; most values are decided without reading the date.
 */
function datePrefiltered(scope: Scope, value: string, from: number | undefined, to: number | undefined, test: string): string {
  const bounds: string[] = [];
  const prefix = `left(${value} #>> '{}', 10) collate "C"`;
  const lower = from === undefined ? null : isoDate(from - DAY_MS);
  const upper = to === undefined ? null : isoDate(to + DAY_MS - 1);
  if (lower !== null) bounds.push(`${prefix} >= ${scope.bind(lower, 'text')}`);
  if (upper !== null) bounds.push(`${prefix} <= ${scope.bind(upper, 'text')}`);
  if (bounds.length === 0) return test;
  return `case when ${bounds.join(' and ')} then ${test} else false end`;
}

/** The UTC date of an instant as YYYY-MM-DD, or null outside years 0000–9999 (where text order is not date order). */
function isoDate(ms: number): string | null {
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  return Number.isNaN(ms) || year < 0 || year > 9999 ? null : date.toISOString().slice(0, 10);
}

const COMPARISON = { eq: '=', neq: '<>', lt: '<', lte: '<=', gt: '>', gte: '>=' } as const;

/** within_last: (now − d, now]; within_next: [now, now + d). `instant` is a timestamptz expression. */
export function instantWindowTest(scope: Scope, instant: string, op: 'within_last' | 'within_next', duration: Duration): string {
  const span = durationMs(duration);
  if (op === 'within_last') return truth(`${instant} <@ tstzrange(${bindInstant(scope, scope.now - span)}, ${scope.nowParam}, '(]')`);
  return truth(`${instant} <@ tstzrange(${scope.nowParam}, ${bindInstant(scope, scope.now + span)}, '[)')`);
}

/**
 * anniversary_within_next: the value's UTC month-day is one of the d days from today (UTC); a
 * duration in minutes or hours counts its whole days, as in the evaluator. The month-day of the
 * text (its local date) is at most a day off the UTC one, which makes a cheap first test.
 */
function anniversaryTest(scope: Scope, value: string, duration: Duration): string {
  const days = anniversaryDays(scope.now, Math.floor(durationMs(duration) / DAY_MS));
  if (days.length === 0) return 'false';
  const exact = truth(`${monthDayOf(value)} = any(${scope.bind(days, 'text[]')})`);
  const nearby = neighbouringMonthDays(days);
  if (nearby.length >= 366) return exact;
  return `case when substr(${value} #>> '{}', 6, 5) = any(${scope.bind(nearby, 'text[]')}) then ${exact} else false end`;
}

/** The month-days, each with the day before and after it in a leap year and in other years. */
export function neighbouringMonthDays(monthDays: readonly string[]): string[] {
  const found = new Set<string>();
  for (const monthDay of monthDays) {
    for (const year of [2023, 2024]) {
      const [month, day] = monthDay.split('-').map(Number) as [number, number];
      // 02-29 in a year without one stands for 28 February.
      const base = Date.UTC(year, month - 1, month === 2 && day === 29 && year === 2023 ? 28 : day);
      for (const offset of [-1, 0, 1]) found.add(new Date(base + offset * DAY_MS).toISOString().slice(5, 10));
    }
    found.add(monthDay);
  }
  return [...found].sort();
}

/**
 * The month-days ('MM-DD') whose anniversary falls on one of `days` days from the UTC day of `now`:
 * each day's own, and 02-29 on a 28 February of a year without one. Worked out here, once, so the
 * query only looks the value's month-day up.
 */
export function anniversaryDays(now: number, days: number): string[] {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const found = new Set<string>();
  // Two years of days hold every month-day, 29 February included.
  for (let i = 0; i < Math.min(days, 731); i++) {
    const day = new Date(today + i * DAY_MS);
    const month = day.getUTCMonth() + 1;
    const date = day.getUTCDate();
    found.add(`${String(month).padStart(2, '0')}-${String(date).padStart(2, '0')}`);
    const year = day.getUTCFullYear();
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    if (month === 2 && date === 28 && !leap) found.add('02-29');
  }
  return [...found].sort();
}

export type NumericTest = { op: 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte'; value: number } | { op: 'between'; low: number; high: number };

/** A total boolean: the test on a double expression; false when the measure is absent (null), neq included. */
export function numericTest(scope: Scope, measure: string, test: NumericTest): string {
  if (test.op === 'between') return truth(`${measure} between ${scope.bind(test.low, 'float8')} and ${scope.bind(test.high, 'float8')}`);
  return truth(`${measure} ${COMPARISON[test.op]} ${scope.bind(test.value, 'float8')}`);
}

/** The test's answer for a measure that is present and equal to `value` (zero counts and sums). */
export function numericTestAt(test: NumericTest, value: number): boolean {
  switch (test.op) {
    case 'between':
      return value >= test.low && value <= test.high;
    case 'eq':
      return value === test.value;
    case 'neq':
      return value !== test.value;
    case 'lt':
      return value < test.value;
    case 'lte':
      return value <= test.value;
    case 'gt':
      return value > test.value;
    case 'gte':
      return value >= test.value;
  }
}
