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

function walk(value: unknown, path: string, depth: number, visit: (path: string, type: ObservedType) => void): void {
  const type = typeOf(value);
  if (path) visit(path, type);
  if (depth >= MAX_DEPTH) return;
  if (type === 'object') {
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      walk(child, path ? `${path}.${key}` : key, depth + 1, visit);
    }
  } else if (type === 'array' && path) {
    for (const item of value as unknown[]) {
      if (typeOf(item) === 'object') walk(item, `${path}[]`, depth + 1, visit);
    }
  }
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

/** Summarises stored events into per-event observations: counts, time range and property types. */
export function observeEvents(events: readonly NormalizedEvent[]): EventObservation[] {
  const byEvent = new Map<string, EventObservation & { paths: Map<string, PropertyObservation> }>();
  for (const event of events) {
    const name = catalogueName(event);
    const key = `${event.type}\u0000${name}`;
    const time = event.timestamp.toISOString();
    let entry = byEvent.get(key);
    if (!entry) {
      entry = { type: event.type, name, count: 0, firstSeen: time, lastSeen: time, properties: [], paths: new Map() };
      byEvent.set(key, entry);
    }
    entry.count += 1;
    if (time < entry.firstSeen) entry.firstSeen = time;
    if (time > entry.lastSeen) entry.lastSeen = time;
    const current = entry;
    for (const [scope, object] of scopesOf(event)) {
      if (!object) continue;
      walk(object, '', 0, (path, type) => {
        const pathKey = `${scope}\u0000${path}`;
        let property = current.paths.get(pathKey);
        if (!property) {
          if (current.paths.size >= MAX_PATHS_PER_EVENT) return;
          property = { scope, path, typeCounts: {} };
          current.paths.set(pathKey, property);
        }
        property.typeCounts[type] = (property.typeCounts[type] ?? 0) + 1;
      });
    }
  }
  return [...byEvent.values()].map(({ paths, ...observation }) => ({ ...observation, properties: [...paths.values()] }));
}
