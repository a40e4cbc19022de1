import type { NormalizedEvent } from '../ingest/normalize.ts';

export type ObservedType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';
export type PropertyScope = 'properties' | 'traits' | 'context';

export interface PropertyObservation {
  scope: PropertyScope;
  /** Dot path; items of arrays of objects appear under `list[].field`. */
  path: string;
  typeCounts: Partial<Record<ObservedType, number>>;
}

/** What a set of events tells the catalogue about one event (type + name). */
export interface EventObservation {
  type: NormalizedEvent['type'];
  /** track: the event name; page/screen: the page name ('' when none); others: ''. */
  name: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
  properties: PropertyObservation[];
}

// Bounds keep one badly-shaped client (ids as keys, deep blobs) from flooding the catalogue.
const MAX_DEPTH = 4;
const MAX_PATHS_PER_EVENT = 200;

function typeOf(value: unknown): ObservedType {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'boolean') return type;
  return 'object';
}

function scopesOf(event: NormalizedEvent): Array<[PropertyScope, Record<string, unknown> | null]> {
  const payload: PropertyScope = event.type === 'identify' || event.type === 'group' ? 'traits' : 'properties';
  return [
    [payload, payload === 'traits' ? event.traits : event.properties],
    ['context', event.context],
  ];
}

export function catalogueName(event: Pick<NormalizedEvent, 'type' | 'event' | 'name'>): string {
  if (event.type === 'track') return event.event ?? '';
  if (event.type === 'page' || event.type === 'screen') return event.name ?? '';
  return '';
}

type Entry = EventObservation & { firstMs: number; lastMs: number; paths: Map<string, PropertyObservation>[] };

const SCOPE_INDEX: Record<PropertyScope, number> = { properties: 0, traits: 1, context: 2 };

/**
 * Counts one event's values into an entry (what a recursive walk with a visitor did before,
 * without its closures, per-visit key strings and Object.entries arrays: it runs for every event
 * on the ingest path). Paths are kept per scope, so a path is one map key; `count` of paths is the
 * entry's properties array, which holds them in first-seen order.
 */
function observeValue(entry: Entry, scope: PropertyScope, paths: Map<string, PropertyObservation>, value: unknown, path: string, depth: number): void {
  const type = typeOf(value);
  if (path) {
    let property = paths.get(path);
    if (!property && entry.properties.length < MAX_PATHS_PER_EVENT) {
      property = { scope, path, typeCounts: {} };
      paths.set(path, property);
      entry.properties.push(property);
    }
    if (property) property.typeCounts[type] = (property.typeCounts[type] ?? 0) + 1;
  }
  if (depth >= MAX_DEPTH) return;
  if (type === 'object') {
    const object = value as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      observeValue(entry, scope, paths, object[key], path ? `${path}.${key}` : key, depth + 1);
    }
  } else if (type === 'array' && path) {
    const itemPath = `${path}[]`;
    for (const item of value as unknown[]) {
      if (typeOf(item) === 'object') observeValue(entry, scope, paths, item, itemPath, depth + 1);
    }
  }
}

/** Summarises stored events into per-event observations: counts, time range and property types. */
export function observeEvents(events: readonly NormalizedEvent[]): EventObservation[] {
  const byEvent = new Map<string, Entry>();
  for (const event of events) {
    const name = catalogueName(event);
    const key = `${event.type}\u0000${name}`;
    // Times are compared as numbers and written once per entry: an ISO string per event cost more.
    const ms = event.timestamp.getTime();
    let entry = byEvent.get(key);
    if (!entry) {
      entry = { type: event.type, name, count: 0, firstSeen: '', lastSeen: '', firstMs: ms, lastMs: ms, properties: [], paths: [new Map(), new Map(), new Map()] };
      byEvent.set(key, entry);
    }
    entry.count += 1;
    if (ms < entry.firstMs) entry.firstMs = ms;
    if (ms > entry.lastMs) entry.lastMs = ms;
    for (const [scope, object] of scopesOf(event)) {
      if (object) observeValue(entry, scope, entry.paths[SCOPE_INDEX[scope]]!, object, '', 0);
    }
  }
  return [...byEvent.values()].map(({ type, name, count, firstMs, lastMs, properties }) => ({
    type,
    name,
    count,
    firstSeen: new Date(firstMs).toISOString(),
    lastSeen: new Date(lastMs).toISOString(),
    properties,
  }));
}
