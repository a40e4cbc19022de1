import { describe, expect, it } from 'vitest';
import { generateEvents } from '../../bench/events.ts';
import { observeEvents, type EventObservation, type ObservedType, type PropertyObservation, type PropertyScope } from '../src/catalogue/observe.ts';
import { normalizeEvent, type NormalizedEvent } from '../src/ingest/normalize.ts';

// observeEvents as it was before it was rewritten for the ingest path (a recursive walk with a
// visitor, one `scope\0path` map, ISO strings compared per event): the reference the faster one
// must match exactly, order of events, paths and type counts included.
function referenceObserve(events: readonly NormalizedEvent[]): EventObservation[] {
  const typeOf = (value: unknown): ObservedType => {
    if (value === null || value === undefined) return 'null';
    if (Array.isArray(value)) return 'array';
    const type = typeof value;
    if (type === 'string' || type === 'number' || type === 'boolean') return type;
    return 'object';
  };
  const walk = (value: unknown, path: string, depth: number, visit: (path: string, type: ObservedType) => void): void => {
    const type = typeOf(value);
    if (path) visit(path, type);
    if (depth >= 4) return;
    if (type === 'object') {
      for (const [key, child] of Object.entries(value as Record<string, unknown>)) walk(child, path ? `${path}.${key}` : key, depth + 1, visit);
    } else if (type === 'array' && path) {
      for (const item of value as unknown[]) if (typeOf(item) === 'object') walk(item, `${path}[]`, depth + 1, visit);
    }
  };
  const byEvent = new Map<string, EventObservation & { paths: Map<string, PropertyObservation> }>();
  for (const event of events) {
    const name = event.type === 'track' ? event.event ?? '' : event.type === 'page' || event.type === 'screen' ? event.name ?? '' : '';
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
    const payload: PropertyScope = event.type === 'identify' || event.type === 'group' ? 'traits' : 'properties';
    const scopes: Array<[PropertyScope, Record<string, unknown> | null]> = [
      [payload, payload === 'traits' ? event.traits : event.properties],
      ['context', event.context],
    ];
    for (const [scope, object] of scopes) {
      if (!object) continue;
      walk(object, '', 0, (path, type) => {
        const pathKey = `${scope}\u0000${path}`;
        let property = current.paths.get(pathKey);
        if (!property) {
          if (current.paths.size >= 200) return;
          property = { scope, path, typeCounts: {} };
          current.paths.set(pathKey, property);
        }
        property.typeCounts[type] = (property.typeCounts[type] ?? 0) + 1;
      });
    }
  }
  return [...byEvent.values()].map(({ paths, ...observation }) => ({ ...observation, properties: [...paths.values()] }));
}

function normalized(raw: Record<string, unknown>): NormalizedEvent {
  const result = normalizeEvent(raw, { receivedAt: new Date('2026-01-01T00:00:00.000Z'), historical: true });
  if (!result.ok) throw new Error(result.rejection.message);
  return result.event;
}

describe('observeEvents', () => {
  it('matches the reference walk on the ingest benchmark events (JSON order included)', () => {
    const events = Array.from({ length: 8 }, (_, t) => generateEvents('test', t, `b${t}`, 100, Date.UTC(2026, 0, 1)))
      .flat()
      .map((raw) => normalized(raw as unknown as Record<string, unknown>));
    const observed = observeEvents(events);
    expect(observed.length).toBeGreaterThan(3);
    expect(JSON.stringify(observed)).toBe(JSON.stringify(referenceObserve(events)));
  });

  it('matches it on awkward shapes: dotted keys, arrays of objects, depth, nulls, mixed types, the 200-path cap', () => {
    const wide = Object.fromEntries(Array.from({ length: 230 }, (_, i) => [`k${i}`, i % 3 === 0 ? null : i]));
    const events = [
      normalized({ type: 'track', userId: 'a', event: 'E', timestamp: '2025-03-01T00:00:00Z', properties: { 'a.b': 1, a: { b: 'x', c: [1, { d: 2 }, [{ e: 1 }]] } } }),
      normalized({ type: 'track', userId: 'a', event: 'E', timestamp: '2025-01-01T00:00:00Z', properties: { a: { b: { c: { d: { e: { f: 1 } } } } }, list: [{ x: 1 }, { x: 'y', z: null }] } }),
      normalized({ type: 'identify', userId: 'a', timestamp: '2025-02-01T00:00:00Z', traits: { email: 'a@x', plan: null }, context: { traits: { email: 'a@x' } } }),
      normalized({ type: 'page', anonymousId: 'b', name: 'Home', timestamp: '2025-02-02T00:00:00Z', properties: { path: '/' } }),
      normalized({ type: 'page', anonymousId: 'b', timestamp: '2025-02-03T00:00:00Z' }),
      normalized({ type: 'group', userId: 'a', groupId: 'g', timestamp: '2025-02-04T00:00:00Z', traits: { seats: 3 } }),
      normalized({ type: 'track', userId: 'a', event: 'Wide', timestamp: '2025-02-05T00:00:00Z', properties: wide, context: { ip: '1.2.3.4' } }),
      normalized({ type: 'track', userId: 'a', event: 'Wide', timestamp: '2025-02-06T00:00:00Z', properties: { k1: 'now a string', extra: true }, context: { ip: null } }),
    ];
    const observed = observeEvents(events);
    const wideEntry = observed.find((entry) => entry.name === 'Wide')!;
    expect(wideEntry.properties).toHaveLength(200);
    expect(wideEntry.properties.find((p) => p.path === 'k1')!.typeCounts).toEqual({ number: 1, string: 1 });
    expect(observed.find((entry) => entry.name === 'E')).toMatchObject({ count: 2, firstSeen: '2025-01-01T00:00:00.000Z', lastSeen: '2025-03-01T00:00:00.000Z' });
    expect(JSON.stringify(observed)).toBe(JSON.stringify(referenceObserve(events)));
  });
});
