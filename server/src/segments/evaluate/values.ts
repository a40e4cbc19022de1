import { parseInstant } from '../../ingest/normalize.ts';
import { durationMs, type Duration, type Scalar, type ValueOperator } from '../ast.ts';

/*
 * The value rules of ast.ts ("Shared semantics") for one JSON value: numbers, strings, dates,
 * presence, paths, and every ValueOperator. Shared by the segment evaluator and the computed-trait
 * evaluator so both read values exactly alike.
 */

const DAY_MS = 86_400_000;
const DECIMAL = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** Present: exists and is not JSON null. */
export function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/**
 * The value as a number when ast.ts counts it as one (a JSON number, or a string that is a decimal
 * number in full), else null. Out-of-range strings ("1e400") are not numbers: PostgreSQL's float8
 * refuses them too.
 */
export function numericValue(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value !== 'string' || !DECIMAL.test(value)) return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/** Milliseconds since the epoch of a JSON string that is an ISO-8601 date or date-time, else null. */
export function dateValue(value: unknown): number | null {
  return typeof value === 'string' ? parseInstant(value) : null;
}

/** A literal instant of a definition; a bad one is a definition error (the checker refuses it), not a false test. */
export function literalInstant(value: string): number {
  const ms = parseInstant(value);
  if (ms === null) throw new Error(`Invalid instant in segment definition: ${JSON.stringify(value)} (expected ISO-8601)`);
  return ms;
}

const ARRAY_INDEX = /^[ \t\n\v\f\r]*[+-]?\d+$/;

/**
 * Walks `parts` into a JSON value like PostgreSQL's `#>`: object members by key, array elements by
 * integer index (negative counts from the end), anything else absent.
 */
export function walkJson(root: unknown, parts: readonly string[], from = 0): unknown {
  let current = root;
  for (let i = from; i < parts.length; i++) {
    const part = parts[i]!;
    if (current === null || typeof current !== 'object') return undefined;
    if (Array.isArray(current)) {
      if (!ARRAY_INDEX.test(part)) return undefined;
      const index = Number(part.trim());
      if (!Number.isSafeInteger(index) || index > 2_147_483_647 || index < -2_147_483_648) return undefined;
      current = current[index < 0 ? current.length + index : index];
    } else {
      if (!Object.hasOwn(current, part)) return undefined;
      current = (current as Record<string, unknown>)[part];
    }
  }
  return current;
}

/** Path parts of an AST path (dot-separated; the schema forbids empty parts). */
export function pathParts(path: string): string[] {
  return path.split('.');
}

// Compiled patterns by source. The language restricts patterns to a portable subset, so the set is
// bounded by the definitions in use; the cap only guards against an unbounded stream of new ones.
const regexCache = new Map<string, RegExp>();
const REGEX_CACHE_LIMIT = 1000;

/**
 * A pattern as PostgreSQL's `~` reads it in a UTF-8 database: by code points (`u`), and `.`
 * matching newlines too (`s`). Patterns the `u` mode refuses (identity escapes like `\-`) are
 * read without it.
 */
export function compiledPattern(pattern: string): RegExp {
  let regex = regexCache.get(pattern);
  if (regex) return regex;
  try {
    regex = new RegExp(pattern, 'su');
  } catch {
    try {
      regex = new RegExp(pattern, 's');
    } catch (error) {
      throw new Error(`Invalid regular expression in segment definition: ${JSON.stringify(pattern)} (${(error as Error).message})`);
    }
  }
  if (regexCache.size >= REGEX_CACHE_LIMIT) regexCache.clear();
  regexCache.set(pattern, regex);
  return regex;
}

/** A test of one value at a moment, plus when its answer can change on its own. */
export interface ValueTest {
  test(value: unknown, now: number): boolean;
  /** Whether the answer depends on `now` (within_last, within_next, anniversary_within_next). */
  timeDependent: boolean;
  /** The earliest moment after `now` at which test(value, ·) may change; null if never. */
  recheckAt(value: unknown, now: number): number | null;
}

const never = (): null => null;

function scalarEquals(literal: Scalar): (value: unknown) => boolean {
  if (typeof literal === 'number') return (value) => numericValue(value) === literal;
  return (value) => value === literal;
}

function inList(values: readonly Scalar[]): (value: unknown) => boolean {
  const strings = new Set<string>();
  const numbers = new Set<number>();
  const booleans = new Set<boolean>();
  for (const value of values) {
    if (typeof value === 'string') strings.add(value);
    else if (typeof value === 'number') numbers.add(value);
    else booleans.add(value);
  }
  return (value) => {
    if (typeof value === 'boolean') return booleans.has(value);
    if (typeof value === 'string' && strings.has(value)) return true;
    if (numbers.size === 0) return false;
    const number = numericValue(value);
    return number !== null && numbers.has(number);
  };
}

function numberTest(predicate: (number: number) => boolean): (value: unknown) => boolean {
  return (value) => {
    const number = numericValue(value);
    return number !== null && predicate(number);
  };
}

function timeIndependent(test: (value: unknown) => boolean): ValueTest {
  return { test: (value) => test(value), timeDependent: false, recheckAt: never };
}

/** Compiles a ValueOperator (trait conditions, event property filters, first/last values). */
export function compileValueTest(operator: ValueOperator): ValueTest {
  switch (operator.op) {
    case 'eq': {
      const equals = scalarEquals(operator.value);
      return timeIndependent(equals);
    }
    case 'neq': {
      const equals = scalarEquals(operator.value);
      return timeIndependent((value) => !equals(value));
    }
    case 'in':
      return timeIndependent(inList(operator.values));
    case 'not_in': {
      const contained = inList(operator.values);
      return timeIndependent((value) => !contained(value));
    }
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return timeIndependent(numberTest(numericComparison(operator.op, operator.value)));
    case 'between': {
      const { low, high } = operator;
      return timeIndependent(numberTest((number) => number >= low && number <= high));
    }
    case 'contains': {
      const literal = operator.value;
      return timeIndependent((value) =>
        typeof value === 'string' ? value.includes(literal) : Array.isArray(value) && value.some((element) => element === literal),
      );
    }
    case 'starts_with': {
      const literal = operator.value;
      return timeIndependent((value) => typeof value === 'string' && value.startsWith(literal));
    }
    case 'ends_with': {
      const literal = operator.value;
      return timeIndependent((value) => typeof value === 'string' && value.endsWith(literal));
    }
    case 'matches': {
      const regex = compiledPattern(operator.pattern);
      return timeIndependent((value) => typeof value === 'string' && regex.test(value));
    }
    case 'exists':
      return timeIndependent(isPresent);
    case 'missing':
      return timeIndependent((value) => !isPresent(value));
    case 'before':
    case 'after': {
      const instant = literalInstant(operator.value);
      const before = operator.op === 'before';
      return timeIndependent((value) => {
        const ms = dateValue(value);
        return ms !== null && (before ? ms < instant : ms > instant);
      });
    }
    case 'within_last':
    case 'within_next':
    case 'anniversary_within_next': {
      const instantTest = compileInstantWindowTest(operator.op, operator.duration);
      return {
        test: (value, now) => {
          const ms = dateValue(value);
          return ms !== null && instantTest.test(ms, now);
        },
        timeDependent: true,
        recheckAt: (value, now) => {
          const ms = dateValue(value);
          return ms === null ? null : instantTest.recheckAt(ms, now);
        },
      };
    }
  }
}

export function numericComparison(op: 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte', literal: number): (number: number) => boolean {
  switch (op) {
    case 'eq':
      return (number) => number === literal;
    case 'neq':
      return (number) => number !== literal;
    case 'lt':
      return (number) => number < literal;
    case 'lte':
      return (number) => number <= literal;
    case 'gt':
      return (number) => number > literal;
    case 'gte':
      return (number) => number >= literal;
  }
}

/** A test of an instant (ms) against `now`, with the moment its answer next changes. */
export interface InstantTest {
  test(instant: number, now: number): boolean;
  recheckAt(instant: number, now: number): number | null;
}

/**
 * within_last: instant in (now − d, now]; within_next: instant in [now, now + d);
 * anniversary_within_next: the instant's UTC month-day is one of the d days starting today (UTC).
 * Times are whole milliseconds, so "just after T" is T + 1.
 */
export function compileInstantWindowTest(
  op: 'within_last' | 'within_next' | 'anniversary_within_next',
  duration: Duration,
): InstantTest {
  const span = durationMs(duration);
  switch (op) {
    case 'within_last':
      return {
        test: (instant, now) => instant > now - span && instant <= now,
        // In the future: enters when now reaches it. Inside: leaves at instant + d. Past: stays out.
        recheckAt: (instant, now) => (instant > now ? instant : instant > now - span ? instant + span : null),
      };
    case 'within_next':
      return {
        test: (instant, now) => instant >= now && instant < now + span,
        // Far ahead: enters just after instant − d. Inside: leaves just after the instant. Past: stays out.
        recheckAt: (instant, now) => (instant >= now + span ? instant - span + 1 : instant >= now ? instant + 1 : null),
      };
    case 'anniversary_within_next': {
      // A duration in minutes/hours is refused by the checker; read it as whole days (none: false).
      const days = Math.floor(span / DAY_MS);
      return {
        test: (instant, now) => days > 0 && nextAnniversary(instant, now) <= startOfUtcDay(now) + (days - 1) * DAY_MS,
        recheckAt: (instant, now) => {
          // Never true; or always true, since the next anniversary is at most 365 days ahead.
          if (days <= 0 || days >= 366) return null;
          const anniversary = nextAnniversary(instant, now);
          const today = startOfUtcDay(now);
          // Inside: the day after the anniversary, when it has passed. Outside: the day the
          // window's last day reaches it.
          return anniversary <= today + (days - 1) * DAY_MS ? anniversary + DAY_MS : anniversary - (days - 1) * DAY_MS;
        },
      };
    }
  }
}

export function startOfUtcDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Midnight UTC of the instant's month-day in `year`; 29 February is 28 February in other years. */
function anniversaryIn(year: number, month: number, day: number): number {
  return Date.UTC(year, month, month === 1 && day === 29 && !isLeapYear(year) ? 28 : day);
}

/** Midnight UTC of the first anniversary of `instant` on or after the UTC day of `now`. */
export function nextAnniversary(instant: number, now: number): number {
  const date = new Date(instant);
  const month = date.getUTCMonth();
  const day = date.getUTCDate();
  const today = startOfUtcDay(now);
  const year = new Date(today).getUTCFullYear();
  const thisYear = anniversaryIn(year, month, day);
  return thisYear >= today ? thisYear : anniversaryIn(year + 1, month, day);
}
