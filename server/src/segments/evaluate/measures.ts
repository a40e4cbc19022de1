import type { Measure } from '../ast.ts';
import type { ProfileEvent } from '../snapshot.ts';
import { compileEventPath } from './events.ts';
import {
  compileInstantWindowTest,
  compileValueTest,
  literalInstant,
  numericComparison,
  numericValue,
  type InstantTest,
} from './values.ts';

/*
 * Measures over the events of one event condition (ast.ts MeasureSchema) and their tests.
 *
 * For a `last` window the selected events leave one by one (at timestamp + span, oldest first),
 * so the measure over time is its value over ever shorter suffixes of the window's events. A
 * measure gives its value over every suffix at once (O(n)), which lets the evaluator find the
 * first departure that actually changes the answer instead of re-checking at every departure.
 */

/** A measure's value: a number, a JSON value (first/last value), or undefined when absent. */
export type MeasureValue = unknown;

export interface CompiledMeasure {
  /** The value over all the given events (sorted by (timestamp, seq)). */
  value(events: readonly ProfileEvent[]): MeasureValue;
  /** Values over events[k..] for k = 0..n (n + 1 entries; the last is over no events). */
  suffixValues(events: readonly ProfileEvent[]): MeasureValue[];
  test(value: MeasureValue, now: number): boolean;
  /** Whether the test's answer depends on `now` for a fixed value. */
  timeDependent: boolean;
  /** For time-dependent tests: when test(value, ·) may change; null if never. */
  recheckAt(value: MeasureValue, now: number): number | null;
  /**
   * For floating-point measures (sum, avg): whether `value` lies so close to a boundary of the
   * test that rounding in a different summation order could flip it. Such a suffix is treated as
   * a possible change (a re-check early rather than late).
   */
  nearBoundary?(value: MeasureValue, scale: number): boolean;
  /** For nearBoundary: the magnitude of the values summed (sum of absolute values). */
  scale?(events: readonly ProfileEvent[]): number;
}

type NumericTest = Extract<Measure, { kind: 'count' }>['test'];

function compileNumericTest(test: NumericTest): { test: (value: MeasureValue) => boolean; boundaries: number[] } {
  if (test.op === 'between') {
    const { low, high } = test;
    return { test: (value) => typeof value === 'number' && value >= low && value <= high, boundaries: [low, high] };
  }
  const compare = numericComparison(test.op, test.value);
  // An absent measure (avg/min/max of none) fails every test, neq included.
  return { test: (value) => typeof value === 'number' && compare(value), boundaries: [test.value] };
}

const ROUNDING_TOLERANCE = 1e-9;

function numericMeasure(
  test: NumericTest,
  value: (events: readonly ProfileEvent[]) => MeasureValue,
  suffixValues: (events: readonly ProfileEvent[]) => MeasureValue[],
  rounding?: (events: readonly ProfileEvent[]) => number,
): CompiledMeasure {
  const numeric = compileNumericTest(test);
  const measure: CompiledMeasure = {
    value,
    suffixValues,
    test: numeric.test,
    timeDependent: false,
    recheckAt: () => null,
  };
  if (rounding) {
    measure.scale = rounding;
    measure.nearBoundary = (candidate, scale) =>
      typeof candidate === 'number' &&
      numeric.boundaries.some((boundary) => Math.abs(candidate - boundary) <= ROUNDING_TOLERANCE * (1 + scale));
  }
  return measure;
}

/** The numeric values of a property over events (those whose property is a number, see ast.ts). */
function numbersOf(events: readonly ProfileEvent[], read: (event: ProfileEvent) => unknown): Array<number | null> {
  return events.map((event) => numericValue(read(event)));
}

/** Sum in (timestamp, seq) order; the canonical order of the current value. */
export function sumOf(numbers: ReadonlyArray<number | null>): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const number of numbers) {
    if (number === null) continue;
    sum += number;
    count++;
  }
  return { sum, count };
}

function suffixSums(numbers: ReadonlyArray<number | null>): { sums: number[]; counts: number[] } {
  const sums = new Array<number>(numbers.length + 1);
  const counts = new Array<number>(numbers.length + 1);
  sums[numbers.length] = 0;
  counts[numbers.length] = 0;
  for (let i = numbers.length - 1; i >= 0; i--) {
    const number = numbers[i];
    sums[i] = sums[i + 1]! + (number ?? 0);
    counts[i] = counts[i + 1]! + (number === null ? 0 : 1);
  }
  return { sums, counts };
}

function absoluteSum(numbers: ReadonlyArray<number | null>): number {
  let total = 0;
  for (const number of numbers) if (number !== null) total += Math.abs(number);
  return total;
}

/** A key equal for equal scalars (a number and a string never equal); null for non-scalars and absent values. */
export function scalarKey(value: unknown): string | null {
  switch (typeof value) {
    case 'string':
      return `s${value}`;
    case 'number':
      return `n${value}`; // String(-0) is "0": -0 and 0 are one value, as in jsonb
    case 'boolean':
      return value ? 'b1' : 'b0';
    default:
      return null;
  }
}

function compileTimeTest(test: Extract<Measure, { kind: 'first_time' | 'last_time' }>['test']): {
  test: (instant: number, now: number) => boolean;
  instant?: InstantTest;
} {
  if (test.op === 'within_last') {
    const instant = compileInstantWindowTest('within_last', test.duration);
    return { test: instant.test, instant };
  }
  const literal = literalInstant(test.value);
  return test.op === 'before' ? { test: (value) => value < literal } : { test: (value) => value > literal };
}

export function compileMeasure(measure: Measure): CompiledMeasure {
  switch (measure.kind) {
    case 'exists':
      return {
        value: (events) => events.length > 0,
        suffixValues: (events) => Array.from({ length: events.length + 1 }, (_, k) => k < events.length),
        test: (value) => value === true,
        timeDependent: false,
        recheckAt: () => null,
      };
    case 'count':
      return numericMeasure(
        measure.test,
        (events) => events.length,
        (events) => Array.from({ length: events.length + 1 }, (_, k) => events.length - k),
      );
    case 'sum':
    case 'avg': {
      const read = compileEventPath(measure.property);
      const average = measure.kind === 'avg';
      return numericMeasure(
        measure.test,
        (events) => {
          const { sum, count } = sumOf(numbersOf(events, read));
          return average ? (count === 0 ? undefined : sum / count) : sum;
        },
        (events) => {
          const { sums, counts } = suffixSums(numbersOf(events, read));
          return average ? sums.map((sum, k) => (counts[k] === 0 ? undefined : sum / counts[k]!)) : sums;
        },
        (events) => absoluteSum(numbersOf(events, read)),
      );
    }
    case 'min':
    case 'max': {
      const read = compileEventPath(measure.property);
      const pick = measure.kind === 'min' ? Math.min : Math.max;
      const suffixValues = (events: readonly ProfileEvent[]): MeasureValue[] => {
        const values = new Array<number | undefined>(events.length + 1);
        values[events.length] = undefined;
        for (let i = events.length - 1; i >= 0; i--) {
          const number = numericValue(read(events[i]!));
          const rest = values[i + 1];
          values[i] = number === null ? rest : rest === undefined ? number : pick(number, rest);
        }
        return values;
      };
      return numericMeasure(measure.test, (events) => suffixValues(events)[0], suffixValues);
    }
    case 'distinct': {
      const read = compileEventPath(measure.property);
      const suffixValues = (events: readonly ProfileEvent[]): MeasureValue[] => {
        const seen = new Set<string>();
        const values = new Array<number>(events.length + 1);
        values[events.length] = 0;
        for (let i = events.length - 1; i >= 0; i--) {
          const key = scalarKey(read(events[i]!));
          if (key !== null) seen.add(key);
          values[i] = seen.size;
        }
        return values;
      };
      return numericMeasure(measure.test, (events) => suffixValues(events)[0], suffixValues);
    }
    case 'first_time':
    case 'last_time': {
      const first = measure.kind === 'first_time';
      const time = compileTimeTest(measure.test);
      const instantTest = time.instant;
      return {
        value: (events) => (events.length === 0 ? undefined : events[first ? 0 : events.length - 1]!.timestamp),
        suffixValues: (events) =>
          Array.from({ length: events.length + 1 }, (_, k) =>
            k === events.length ? undefined : events[first ? k : events.length - 1]!.timestamp,
          ),
        test: (value, now) => typeof value === 'number' && time.test(value, now),
        timeDependent: instantTest !== undefined,
        recheckAt: (value, now) => (instantTest && typeof value === 'number' ? instantTest.recheckAt(value, now) : null),
      };
    }
    case 'first_value':
    case 'last_value': {
      const first = measure.kind === 'first_value';
      const read = compileEventPath(measure.property);
      const valueTest = compileValueTest(measure.test);
      return {
        value: (events) => (events.length === 0 ? undefined : read(events[first ? 0 : events.length - 1]!)),
        suffixValues: (events) =>
          Array.from({ length: events.length + 1 }, (_, k) => (k === events.length ? undefined : read(events[first ? k : events.length - 1]!))),
        // Tested like a trait value: an absent property (or no event) is absent, so neq/not_in/missing hold.
        test: (value, now) => valueTest.test(value, now),
        timeDependent: valueTest.timeDependent,
        recheckAt: (value, now) => valueTest.recheckAt(value, now),
      };
    }
  }
}

