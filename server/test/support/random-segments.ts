import { parseInstant } from '../../src/ingest/normalize.ts';
import type { Condition, Duration, EventMatch, Measure, PropertyFilter, Scalar, ValueOperator, Window } from '../../src/segments/ast.ts';

/*
 * Random but valid segment ASTs for property tests (parser round-trip, SQL-vs-incremental
 * equivalence). Values come from small pools so that random histories drawing from the same pools
 * actually hit them; every number is a small integer or an x.5, so sums of them are exact doubles.
 */

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
}

/** mulberry32: tiny, fast, and the same sequence for the same seed on every platform. */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[int(0, items.length - 1)] as T;
  };
  return { next, int, pick };
}

export interface RandomSegmentOptions {
  events: string[];
  /** Event property paths (may contain dots: "address.city"). Also used below `context.` and inside object traits. */
  properties: string[];
  traits: string[];
  identifierTypes: string[];
  consentCategories: string[];
  segments: string[];
  maxDepth: number;
  /**
   * Also produce ASTs that are schema-valid but odd: strings with quotes, backquotes, newlines and
   * astral characters, paths that need backquotes, -0 and large numbers, reversed ranges. For the
   * parser/printer round-trip; the evaluator tests leave it off.
   */
  exotic?: boolean;
}

/** The literal pools; a data generator should draw property and trait values from these too. */
export const VALUE_POOLS = {
  numbers: [-2, -1, 0, 1, 2, 3, 5, 10, 100, 0.5, 1.5, 2.5, 99.5] as const,
  strings: ['a', 'abc', 'shoes', 'Shoes', 'sale', '上海', '北京', '上海市', '10', '2.5', 'email'] as const,
  dates: [
    '2024-01-01T00:00:00Z',
    '2024-02-29',
    '2024-03-15T12:30:00Z',
    '2024-06-30T23:59:59Z',
    '2024-12-31T08:00:00+08:00',
    '2025-01-01T00:00:00.000Z',
  ] as const,
  /**
   * Read alike by JavaScript and PostgreSQL (no \w: its Unicode reach differs; no lookaround,
   * backreferences or flags).
   */
  patterns: ['^a', 'c$', '^[a-z]+$', '^[0-9]+(\\.[0-9]+)?$', '\\d', '上', '^(sale|shoes)$', 'a.c', 'o{2}', 'b+', '^[^a-z]', 'S?hoes'] as const,
  salts: ['', 'exp1', '实验'] as const,
} as const;

const EXOTIC_STRINGS = ['', 'say "hi"', 'back`quote', 'line\nbreak', 'tab\there', '\\', '😀 emoji', 'a.b', ' padded ', '\u0000nul', 'é'];
const EXOTIC_PATH_PARTS = ['order count', 'a-b', '`tick`', '城市', 'x_1', '123', 'ünïcödé', '$ref', ' '];
const EXOTIC_NUMBERS = [-0, 1e21, -1.25e-7, 123456789.125, Number.MAX_SAFE_INTEGER, 5e-324];

const VALUE_OPS = [
  'eq', 'neq', 'in', 'not_in', 'lt', 'lte', 'gt', 'gte', 'between', 'contains', 'starts_with', 'ends_with', 'matches',
  'exists', 'missing', 'before', 'after', 'within_last', 'within_next', 'anniversary_within_next',
] as const;
const UNITS: Duration['unit'][] = ['minutes', 'hours', 'days', 'weeks'];
const AMOUNTS: Record<Duration['unit'], number[]> = { minutes: [1, 30, 90], hours: [1, 2, 12, 24, 36], days: [1, 7, 30, 90, 365], weeks: [1, 2, 4] };

export function randomCondition(rng: Rng, options: RandomSegmentOptions): Condition {
  return randomAt(rng, options, 0);
}

type LeafKind = 'trait' | 'event' | 'sequence' | 'identifier' | 'segment' | 'consent' | 'bucket';

function randomAt(rng: Rng, options: RandomSegmentOptions, depth: number): Condition {
  const leaves: LeafKind[] = ['bucket'];
  if (options.traits.length > 0) leaves.push('trait', 'trait');
  if (options.events.length > 0) leaves.push('event', 'event', 'event', 'sequence');
  if (options.identifierTypes.length > 0) leaves.push('identifier');
  if (options.segments.length > 0) leaves.push('segment');
  if (options.consentCategories.length > 0) leaves.push('consent');
  const compound = depth < options.maxDepth && rng.next() < 0.45;
  if (compound) {
    const shape = rng.pick(['and', 'and', 'or', 'or', 'not'] as const);
    if (shape === 'not') return { kind: 'not', condition: randomAt(rng, options, depth + 1) };
    // One child now and then: a legal AST the printer must still round-trip.
    const size = rng.next() < 0.1 ? 1 : rng.int(2, 3);
    return { kind: shape, conditions: Array.from({ length: size }, () => randomAt(rng, options, depth + 1)) };
  }
  switch (rng.pick(leaves)) {
    case 'trait':
      return { kind: 'trait', trait: randomTraitPath(rng, options), ...randomValueOperator(rng, options) };
    case 'event':
      return randomEventCondition(rng, options);
    case 'sequence': {
      const window = rng.next() < 0.4 ? randomWindow(rng, options) : undefined;
      return {
        kind: 'sequence',
        first: randomEventMatch(rng, options),
        then: randomEventMatch(rng, options),
        negated: rng.next() < 0.5,
        within: randomDuration(rng, UNITS),
        ...(window ? { window } : {}),
      };
    }
    case 'identifier':
      return { kind: 'identifier', type: rng.pick(options.identifierTypes) };
    case 'segment':
      return { kind: 'segment', segment: rng.pick(options.segments) };
    case 'consent':
      return { kind: 'consent', category: rng.pick(options.consentCategories) };
    case 'bucket': {
      const [from, to] = ordered(rng, rng.int(0, 99), rng.int(0, 99), options);
      return { kind: 'bucket', salt: options.exotic && rng.next() < 0.3 ? rng.pick(EXOTIC_STRINGS) : rng.pick(VALUE_POOLS.salts), from, to };
    }
  }
}

function randomEventCondition(rng: Rng, options: RandomSegmentOptions): Condition {
  const match = randomEventMatch(rng, options);
  const window = rng.next() < 0.7 ? randomWindow(rng, options) : undefined;
  return { kind: 'event', match, ...(window ? { window } : {}), measure: randomMeasure(rng, options) };
}

function randomMeasure(rng: Rng, options: RandomSegmentOptions): Measure {
  const kind = rng.pick(['exists', 'count', 'sum', 'avg', 'min', 'max', 'distinct', 'first_time', 'last_time', 'first_value', 'last_value'] as const);
  switch (kind) {
    case 'exists':
      return { kind };
    case 'count':
      return { kind, test: randomNumericTest(rng, options, [0, 1, 2, 3]) };
    case 'sum':
    case 'avg':
    case 'min':
    case 'max':
    case 'distinct':
      return { kind, property: randomPropertyPath(rng, options), test: randomNumericTest(rng, options, VALUE_POOLS.numbers) };
    case 'first_time':
    case 'last_time':
      return {
        kind,
        test:
          rng.next() < 0.35
            ? { op: 'within_last', duration: randomDuration(rng, UNITS) }
            : { op: rng.pick(['before', 'after'] as const), value: randomDate(rng, options) },
      };
    case 'first_value':
    case 'last_value':
      return { kind, property: randomPropertyPath(rng, options), test: randomValueOperator(rng, options) };
  }
}

function randomNumericTest(rng: Rng, options: RandomSegmentOptions, pool: readonly number[]): Extract<Measure, { kind: 'count' }>['test'] {
  if (rng.next() < 0.2) {
    const [low, high] = ordered(rng, randomNumber(rng, options, pool), randomNumber(rng, options, pool), options);
    return { op: 'between', low, high };
  }
  return { op: rng.pick(['eq', 'neq', 'lt', 'lte', 'gt', 'gte'] as const), value: randomNumber(rng, options, pool) };
}

export function randomValueOperator(rng: Rng, options: RandomSegmentOptions): ValueOperator {
  const op = rng.pick(VALUE_OPS);
  switch (op) {
    case 'eq':
    case 'neq':
      return { op, value: randomScalar(rng, options) };
    case 'in':
    case 'not_in':
      return { op, values: Array.from({ length: rng.int(1, 3) }, () => randomScalar(rng, options)) };
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return { op, value: randomNumber(rng, options, VALUE_POOLS.numbers) };
    case 'between': {
      const [low, high] = ordered(rng, randomNumber(rng, options, VALUE_POOLS.numbers), randomNumber(rng, options, VALUE_POOLS.numbers), options);
      return { op, low, high };
    }
    case 'contains':
    case 'starts_with':
    case 'ends_with': {
      const value = randomString(rng, options);
      return { op, value: value === '' ? 'a' : value };
    }
    case 'matches':
      return { op, pattern: rng.pick(VALUE_POOLS.patterns) };
    case 'exists':
    case 'missing':
      return { op };
    case 'before':
    case 'after':
      return { op, value: randomDate(rng, options) };
    case 'within_last':
    case 'within_next':
      return { op, duration: randomDuration(rng, UNITS) };
    case 'anniversary_within_next':
      return { op, duration: randomDuration(rng, ['days', 'weeks']) };
  }
}

export function randomEventMatch(rng: Rng, options: RandomSegmentOptions): EventMatch {
  const type = rng.pick(['track', 'track', 'track', 'page', 'screen'] as const);
  const named = type === 'track' || rng.next() < 0.6;
  const filterCount = rng.pick([0, 0, 1, 1, 2]);
  const filters: PropertyFilter[] = Array.from({ length: filterCount }, () => ({ property: randomFilterPath(rng, options), ...randomValueOperator(rng, options) }));
  return { type, ...(named ? { name: options.exotic && rng.next() < 0.2 ? randomNonEmptyExoticString(rng) : rng.pick(options.events) } : {}), filters };
}

export function randomWindow(rng: Rng, options: RandomSegmentOptions): Window {
  if (rng.next() < 0.6) return { kind: 'last', duration: randomDuration(rng, UNITS) };
  const shape = rng.pick(['from', 'to', 'both', 'both', 'neither'] as const);
  if (shape === 'neither') return { kind: 'range' };
  if (shape === 'from') return { kind: 'range', from: randomDate(rng, options) };
  if (shape === 'to') return { kind: 'range', to: randomDate(rng, options) };
  const a = randomDate(rng, options);
  // Distinct ends: an empty range is legal but the checker refuses it.
  const b = options.exotic ? randomDate(rng, options) : rng.pick(VALUE_POOLS.dates.filter((date) => date !== a));
  const [from, to] = options.exotic || (parseInstant(a) ?? 0) <= (parseInstant(b) ?? 0) ? [a, b] : [b, a];
  return { kind: 'range', from, to };
}

function randomDuration(rng: Rng, units: Duration['unit'][]): Duration {
  const unit = rng.pick(units);
  return { amount: rng.pick(AMOUNTS[unit]), unit };
}

function randomTraitPath(rng: Rng, options: RandomSegmentOptions): string {
  const key = options.exotic && rng.next() < 0.2 ? rng.pick(EXOTIC_PATH_PARTS) : rng.pick(options.traits);
  // Now and then walk into an object-valued trait.
  return rng.next() < 0.1 && options.properties.length > 0 ? `${key}.${rng.pick(options.properties)}` : key;
}

function randomPropertyPath(rng: Rng, options: RandomSegmentOptions): string {
  if (options.exotic && rng.next() < 0.2) return `${rng.pick(EXOTIC_PATH_PARTS)}.${rng.pick(EXOTIC_PATH_PARTS)}`;
  return options.properties.length > 0 ? rng.pick(options.properties) : 'value';
}

function randomFilterPath(rng: Rng, options: RandomSegmentOptions): string {
  const path = randomPropertyPath(rng, options);
  return rng.next() < 0.15 ? `context.${path}` : path;
}

function randomScalar(rng: Rng, options: RandomSegmentOptions): Scalar {
  const roll = rng.next();
  if (roll < 0.4) return randomNumber(rng, options, VALUE_POOLS.numbers);
  if (roll < 0.9) return randomString(rng, options);
  return rng.next() < 0.5;
}

function randomNumber(rng: Rng, options: RandomSegmentOptions, pool: readonly number[]): number {
  return options.exotic && rng.next() < 0.15 ? rng.pick(EXOTIC_NUMBERS) : rng.pick(pool);
}

function randomString(rng: Rng, options: RandomSegmentOptions): string {
  return options.exotic && rng.next() < 0.3 ? rng.pick(EXOTIC_STRINGS) : rng.pick(VALUE_POOLS.strings);
}

function randomNonEmptyExoticString(rng: Rng): string {
  const value = rng.pick(EXOTIC_STRINGS);
  return value === '' ? 'x' : value;
}

function randomDate(rng: Rng, options: RandomSegmentOptions): string {
  // Schema-valid (10-40 characters) yet not an instant: only the round-trip sees these.
  if (options.exotic && rng.next() < 0.1) return rng.pick(['not a date', '2024-13-45T99:99:99Z']);
  return rng.pick(VALUE_POOLS.dates);
}

/** Low ≤ high, except that exotic mode sometimes keeps a reversed pair (legal in the schema). */
function ordered(rng: Rng, a: number, b: number, options: RandomSegmentOptions): [number, number] {
  if (options.exotic && rng.next() < 0.2) return [a, b];
  return a <= b ? [a, b] : [b, a];
}
