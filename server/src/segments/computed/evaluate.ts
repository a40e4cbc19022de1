import type { ProfileEvent } from '../snapshot.ts';
import { compileEventMatch, compileEventPath, compileWindow, earlier, eventsInWindow, matchingEvents } from '../evaluate/events.ts';
import { scalarKey, sumOf } from '../evaluate/measures.ts';
import { numericValue } from '../evaluate/values.ts';
import { UNIQUE_LIST_LIMIT, type ComputedTraitDefinition } from './definition.ts';

/*
 * A computed trait's value for one profile at `now` (definition.ts says what each kind means).
 * Pure, and built from the segment evaluator's pieces (event matching, windows, numbers, scalar
 * equality), so `trait.<key>` and the equivalent event condition of a segment read events alike.
 */

export interface ComputedTraitEvaluation {
  /** The JSON value to store, or undefined when absent (the trait is removed). */
  value: unknown;
  /** The earliest moment after `now` at which the value may change with no new data; null if never. */
  recheckAt: number | null;
}

type Measure = (events: readonly ProfileEvent[]) => unknown;

interface CompiledComputedTrait {
  evaluate(events: readonly ProfileEvent[], now: number): ComputedTraitEvaluation;
}

const compiledDefinitions = new WeakMap<ComputedTraitDefinition, CompiledComputedTrait>();

/**
 * The value of a computed trait over a profile's events (in any order; events the definition
 * cannot match may be left out) at `now` (ms since the epoch). Throws on a definition with an
 * invalid instant or regular expression, never on event data.
 */
export function evaluateComputedTrait(definition: ComputedTraitDefinition, events: readonly ProfileEvent[], now: number): ComputedTraitEvaluation {
  let compiled = compiledDefinitions.get(definition);
  if (!compiled) {
    compiled = compileComputedTrait(definition);
    compiledDefinitions.set(definition, compiled);
  }
  return compiled.evaluate(events, now);
}

// A `last` window loses its events one departure at a time; the value is recomputed at up to this
// many departures to find the first that changes it, then a re-check is simply scheduled.
const DEPARTURES_EXAMINED = 32;

function compileComputedTrait(definition: ComputedTraitDefinition): CompiledComputedTrait {
  const match = compileEventMatch(definition.match);
  const window = compileWindow(definition.window);
  const measure = compileMeasure(definition);
  return {
    evaluate: (events, now) => {
      const matched = matchingEvents(events, match, now);
      const selected = eventsInWindow(matched.events, window, now);
      const value = measure(selected);
      let recheckAt = matched.recheckAt;
      if (window.kind === 'last') {
        let examined = 0;
        for (let k = 1; k <= selected.length; k++) {
          // Events of one timestamp leave together, at timestamp + span.
          if (k < selected.length && selected[k]!.timestamp === selected[k - 1]!.timestamp) continue;
          const at = selected[k - 1]!.timestamp + window.span;
          if (++examined > DEPARTURES_EXAMINED || !sameValue(measure(selected.slice(k)), value)) {
            recheckAt = earlier(recheckAt, at);
            break;
          }
        }
      }
      return { value, recheckAt };
    },
  };
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => item === b[i]);
  return a === b;
}

function present(value: unknown): unknown {
  return value === null ? undefined : value;
}

function compileMeasure(definition: ComputedTraitDefinition): Measure {
  switch (definition.kind) {
    case 'count':
      return (events) => events.length;
    case 'first_event_time':
      return (events) => (events.length === 0 ? undefined : new Date(events[0]!.timestamp).toISOString());
    case 'last_event_time':
      return (events) => (events.length === 0 ? undefined : new Date(events[events.length - 1]!.timestamp).toISOString());
  }
  const read = compileEventPath(definition.property);
  switch (definition.kind) {
    case 'sum':
    case 'avg': {
      const average = definition.kind === 'avg';
      return (events) => {
        const { sum, count } = sumOf(events.map((event) => numericValue(read(event))));
        return average ? (count === 0 ? undefined : sum / count) : sum;
      };
    }
    case 'min':
    case 'max': {
      const pick = definition.kind === 'min' ? Math.min : Math.max;
      return (events) => {
        let result: number | undefined;
        for (const event of events) {
          const number = numericValue(read(event));
          if (number !== null) result = result === undefined ? number : pick(result, number);
        }
        return result;
      };
    }
    case 'first_value':
      return (events) => (events.length === 0 ? undefined : present(read(events[0]!)));
    case 'last_value':
      return (events) => (events.length === 0 ? undefined : present(read(events[events.length - 1]!)));
    case 'most_frequent':
      return (events) => {
        const tallies = new Map<string, { count: number; latest: number; value: unknown }>();
        let best: { count: number; latest: number; value: unknown } | undefined;
        // Events are in (timestamp, seq) order, so a later index is a more recent occurrence.
        events.forEach((event, index) => {
          const value = read(event);
          const key = scalarKey(value);
          if (key === null) return;
          const tally = tallies.get(key) ?? { count: 0, latest: index, value };
          tally.count++;
          tally.latest = index;
          tallies.set(key, tally);
          if (!best || tally.count > best.count || (tally.count === best.count && tally.latest > best.latest)) best = tally;
        });
        // A tally only grows, so the best seen so far is the best (its latest index is current).
        return best?.value;
      };
    case 'unique_list':
      return (events) => {
        const seen = new Set<string>();
        const values: unknown[] = [];
        for (const event of events) {
          const value = read(event);
          const key = scalarKey(value);
          if (key === null || seen.has(key)) continue;
          seen.add(key);
          values.push(value);
          if (values.length === UNIQUE_LIST_LIMIT) break;
        }
        return values;
      };
    case 'unique_count':
      return (events) => {
        const seen = new Set<string>();
        for (const event of events) {
          const key = scalarKey(read(event));
          if (key !== null) seen.add(key);
        }
        return seen.size;
      };
  }
}
