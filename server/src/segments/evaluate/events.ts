import { durationMs, type EventMatch, type Window } from '../ast.ts';
import type { ProfileEvent } from '../snapshot.ts';
import { compileValueTest, literalInstant, pathParts, walkJson, type ValueTest } from './values.ts';

/*
 * Which of a profile's events an EventMatch and a Window select, computed once per events array
 * (a snapshot's events are shared by every segment and computed trait evaluated on it).
 */

/** (timestamp, seq): the one order of events everywhere in the language. */
export function compareEvents(a: ProfileEvent, b: ProfileEvent): number {
  return a.timestamp - b.timestamp || a.seq - b.seq;
}

/** A property path of an event filter: into `properties`, or into `context` when it starts with `context`. */
export function compileEventPath(path: string): (event: ProfileEvent) => unknown {
  const parts = pathParts(path);
  if (parts[0] === 'context') return (event) => walkJson(event.context, parts, 1);
  return (event) => walkJson(event.properties, parts, 0);
}

export interface CompiledEventMatch {
  /** Equal for equal matches: the cache key of the selected events. */
  key: string;
  /** Whether a filter depends on `now` (a date property within_last/within_next/anniversary). */
  timeDependent: boolean;
  matches(event: ProfileEvent, now: number): boolean;
  /** When the event's match may change on its own; only for time-dependent matches. */
  recheckAt(event: ProfileEvent, now: number): number | null;
}

interface CompiledFilter {
  read: (event: ProfileEvent) => unknown;
  test: ValueTest;
}

export function compileEventMatch(match: EventMatch): CompiledEventMatch {
  const { type, name } = match;
  const filters: CompiledFilter[] = match.filters.map((filter) => ({ read: compileEventPath(filter.property), test: compileValueTest(filter) }));
  const nameOf = type === 'track' ? (event: ProfileEvent) => event.event : (event: ProfileEvent) => event.name;
  const selects = (event: ProfileEvent): boolean => event.type === type && (name === undefined || nameOf(event) === name);
  const timeDependent = filters.some((filter) => filter.test.timeDependent);
  return {
    key: JSON.stringify([type, name ?? null, match.filters]),
    timeDependent,
    matches: (event, now) => selects(event) && filters.every((filter) => filter.test.test(filter.read(event), now)),
    recheckAt: (event, now) => {
      if (!timeDependent || !selects(event)) return null;
      // The match can only change when a time-dependent filter does, and never while a
      // time-independent one is false.
      let earliest: number | null = null;
      for (const filter of filters) {
        const value = filter.read(event);
        if (!filter.test.timeDependent) {
          if (!filter.test.test(value, now)) return null;
          continue;
        }
        earliest = earlier(earliest, filter.test.recheckAt(value, now));
      }
      return earliest;
    },
  };
}

export function earlier(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

export function later(a: number, b: number): number {
  return a > b ? a : b;
}

export interface MatchedEvents {
  /** The matching events in (timestamp, seq) order. */
  events: readonly ProfileEvent[];
  /** When the set may change with no new data (time-dependent filters only); null if never. */
  recheckAt: number | null;
}

interface EventsCache {
  sorted: readonly ProfileEvent[];
  stable: Map<string, MatchedEvents>;
  timedAt: number;
  timed: Map<string, MatchedEvents>;
}

const eventsCaches = new WeakMap<readonly ProfileEvent[], EventsCache>();

function isSorted(events: readonly ProfileEvent[]): boolean {
  for (let i = 1; i < events.length; i++) if (compareEvents(events[i - 1]!, events[i]!) > 0) return false;
  return true;
}

/**
 * The events that `match` selects at `now`, in (timestamp, seq) order. Cached per events array,
 * so every condition and computed trait over the same snapshot filters each match once.
 */
export function matchingEvents(events: readonly ProfileEvent[], match: CompiledEventMatch, now: number): MatchedEvents {
  let cache = eventsCaches.get(events);
  if (!cache) {
    cache = { sorted: isSorted(events) ? events : [...events].sort(compareEvents), stable: new Map(), timedAt: now, timed: new Map() };
    eventsCaches.set(events, cache);
  }
  if (!match.timeDependent) {
    let matched = cache.stable.get(match.key);
    if (!matched) {
      matched = { events: cache.sorted.filter((event) => match.matches(event, now)), recheckAt: null };
      cache.stable.set(match.key, matched);
    }
    return matched;
  }
  if (cache.timedAt !== now) {
    cache.timed = new Map();
    cache.timedAt = now;
  }
  let matched = cache.timed.get(match.key);
  if (!matched) {
    const selected: ProfileEvent[] = [];
    let recheckAt: number | null = null;
    for (const event of cache.sorted) {
      if (match.matches(event, now)) selected.push(event);
      recheckAt = earlier(recheckAt, match.recheckAt(event, now));
    }
    matched = { events: selected, recheckAt };
    cache.timed.set(match.key, matched);
  }
  return matched;
}

export type CompiledWindow =
  | { kind: 'all' }
  | { kind: 'range'; from: number; to: number }
  /** timestamp > now − span: events leave, one by one, at timestamp + span. */
  | { kind: 'last'; span: number };

export function compileWindow(window: Window | undefined): CompiledWindow {
  if (!window) return { kind: 'all' };
  if (window.kind === 'last') return { kind: 'last', span: durationMs(window.duration) };
  return {
    kind: 'range',
    from: window.from === undefined ? -Infinity : literalInstant(window.from),
    to: window.to === undefined ? Infinity : literalInstant(window.to),
  };
}

/** Index of the first event with timestamp > `instant` (`strict`) or ≥ `instant`, in sorted events. */
function firstIndexAfter(events: readonly ProfileEvent[], instant: number, strict: boolean): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const timestamp = events[middle]!.timestamp;
    if (strict ? timestamp > instant : timestamp >= instant) high = middle;
    else low = middle + 1;
  }
  return low;
}

/** The sorted events inside the window at `now` (a contiguous run of the sorted input). */
export function eventsInWindow(events: readonly ProfileEvent[], window: CompiledWindow, now: number): readonly ProfileEvent[] {
  switch (window.kind) {
    case 'all':
      return events;
    case 'last': {
      const start = firstIndexAfter(events, now - window.span, true);
      return start === 0 ? events : events.slice(start);
    }
    case 'range': {
      const start = window.from === -Infinity ? 0 : firstIndexAfter(events, window.from, false);
      const end = window.to === Infinity ? events.length : firstIndexAfter(events, window.to, false);
      return start === 0 && end === events.length ? events : events.slice(start, end);
    }
  }
}
