import { Value } from '@sinclair/typebox/value';
import { durationMs } from '../src/segments/ast.ts';
import { describe, expect, it } from 'vitest';
import type { EventMatch, Window } from '../src/segments/ast.ts';
import { ComputedTraitDefinitionSchema, type ComputedTraitDefinition } from '../src/segments/computed/definition.ts';
import { evaluateComputedTrait } from '../src/segments/computed/evaluate.ts';
import { evaluateSegment } from '../src/segments/evaluate.ts';
import { createRng } from './support/random-segments.ts';
import type { ProfileEvent } from '../src/segments/snapshot.ts';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const NOW = Date.UTC(2024, 5, 15, 12, 0, 0);

let nextSeq = 1;
function order(timestamp: number, properties: Record<string, unknown> = {}, seq = nextSeq++): ProfileEvent {
  return { seq, type: 'track', event: 'Order Completed', name: null, timestamp, properties, context: { channel: 'app' } };
}
const ORDERS: EventMatch = { type: 'track', name: 'Order Completed', filters: [] };
const last = (days: number): Window => ({ kind: 'last', duration: { amount: days, unit: 'days' } });

function definition(kind: ComputedTraitDefinition['kind'], extra: { property?: string; window?: Window; match?: EventMatch } = {}): ComputedTraitDefinition {
  const { match = ORDERS, ...rest } = extra;
  return { kind, match, ...rest } as ComputedTraitDefinition;
}
const value = (d: ComputedTraitDefinition, events: ProfileEvent[], now = NOW) => evaluateComputedTrait(d, events, now).value;

describe('ComputedTraitDefinitionSchema', () => {
  it('accepts every kind with its fields and refuses missing or stray ones', () => {
    const valid: ComputedTraitDefinition[] = [
      { kind: 'count', match: ORDERS, window: last(30) },
      { kind: 'sum', property: 'revenue', match: ORDERS },
      { kind: 'most_frequent', property: 'context.channel', match: { type: 'page', filters: [] } },
      { kind: 'first_value', property: 'sku', match: ORDERS, window: { kind: 'range', from: '2024-01-01' } },
      { kind: 'unique_list', property: 'category', match: ORDERS },
      { kind: 'last_event_time', match: ORDERS },
    ];
    for (const d of valid) expect(Value.Check(ComputedTraitDefinitionSchema, d), JSON.stringify(d)).toBe(true);
    const invalid = [
      { kind: 'sum', match: ORDERS },
      { kind: 'count', property: 'x', match: ORDERS },
      { kind: 'median', property: 'x', match: ORDERS },
      { kind: 'count' },
      { kind: 'count', match: ORDERS, window: { kind: 'last' } },
      { kind: 'max', property: 'a..b', match: ORDERS },
    ];
    for (const d of invalid) expect(Value.Check(ComputedTraitDefinitionSchema, d), JSON.stringify(d)).toBe(false);
  });
});

describe('evaluateComputedTrait', () => {
  it('count: matching events in the window (0 when none), filters applied', () => {
    const events = [order(NOW - 40 * DAY), order(NOW - 5 * DAY, { revenue: 10 }), order(NOW - DAY, { revenue: 200 })];
    expect(value(definition('count'), events)).toBe(3);
    expect(value(definition('count', { window: last(30) }), events)).toBe(2);
    expect(value(definition('count', { match: { ...ORDERS, filters: [{ property: 'revenue', op: 'gt', value: 100 }] } }), events)).toBe(1);
    expect(value(definition('count', { match: { type: 'track', name: 'Refund', filters: [] } }), events)).toBe(0);
  });

  it('sum/avg/min/max: numbers and decimal strings only; sum of none 0, the others absent', () => {
    const events = [order(NOW - DAY, { revenue: 100 }), order(NOW - DAY, { revenue: '50.5' }), order(NOW - DAY, { revenue: '12abc' }), order(NOW - DAY, {})];
    expect(value(definition('sum', { property: 'revenue' }), events)).toBe(150.5);
    expect(value(definition('avg', { property: 'revenue' }), events)).toBe(75.25);
    expect(value(definition('min', { property: 'revenue' }), events)).toBe(50.5);
    expect(value(definition('max', { property: 'revenue' }), events)).toBe(100);
    const none = [order(NOW - DAY, { revenue: 'free' })];
    expect(value(definition('sum', { property: 'revenue' }), none)).toBe(0);
    for (const kind of ['avg', 'min', 'max'] as const) expect(value(definition(kind, { property: 'revenue' }), none)).toBeUndefined();
  });

  it('most_frequent: the commonest scalar; a tie goes to the most recent; a number and a string differ', () => {
    const p = { property: 'category' };
    expect(value(definition('most_frequent', p), [order(NOW - 3 * HOUR, { category: 'a' }), order(NOW - 2 * HOUR, { category: 'b' }), order(NOW - HOUR, { category: 'a' })])).toBe('a');
    // a, b, b, a: two each, a seen last.
    const tie = [order(NOW - 4 * HOUR, { category: 'a' }), order(NOW - 3 * HOUR, { category: 'b' }), order(NOW - 2 * HOUR, { category: 'b' }), order(NOW - HOUR, { category: 'a' })];
    expect(value(definition('most_frequent', p), tie)).toBe('a');
    // Same timestamp: seq decides which is more recent, whatever the input order.
    const sameTime = [order(NOW, { category: 'y' }, 20), order(NOW, { category: 'x' }, 10)];
    expect(value(definition('most_frequent', p), sameTime)).toBe('y');
    const mixed = [order(NOW - 3 * HOUR, { category: 5 }), order(NOW - 2 * HOUR, { category: '5' }), order(NOW - HOUR, { category: 5 })];
    expect(value(definition('most_frequent', p), mixed)).toBe(5);
    // Objects, arrays and null are not values; none at all is absent.
    expect(value(definition('most_frequent', p), [order(NOW, { category: ['a'] }), order(NOW, { category: null }), order(NOW, { category: { a: 1 } })])).toBeUndefined();
    expect(value(definition('most_frequent', { property: 'context.channel' }), [order(NOW)])).toBe('app');
  });

  it('first/last value: the earliest/latest event by (timestamp, seq); absent or null property is absent', () => {
    const events = [order(NOW - DAY, { sku: 'b' }, 200), order(NOW - DAY, { sku: 'a' }, 100), order(NOW - HOUR, { sku: { id: 7 } }, 300), order(NOW - HOUR, { sku: null }, 301)];
    expect(value(definition('first_value', { property: 'sku' }), events)).toBe('a');
    expect(value(definition('last_value', { property: 'sku' }), events)).toBeUndefined();
    const present = { ...ORDERS, filters: [{ property: 'sku', op: 'exists' as const }] };
    expect(value(definition('last_value', { property: 'sku', match: present }), events)).toEqual({ id: 7 });
    expect(value(definition('first_value', { property: 'sku' }), [])).toBeUndefined();
  });

  it('unique_list by first occurrence, capped at 100; unique_count uncapped', () => {
    const events = [order(NOW - 5 * HOUR, { c: 'b' }), order(NOW - 4 * HOUR, { c: 'a' }), order(NOW - 3 * HOUR, { c: 'b' }), order(NOW - 2 * HOUR, { c: 1 }), order(NOW - HOUR, { c: '1' }), order(NOW, { c: null })];
    expect(value(definition('unique_list', { property: 'c' }), [...events].reverse())).toEqual(['b', 'a', 1, '1']);
    expect(value(definition('unique_count', { property: 'c' }), events)).toBe(4);
    const many = Array.from({ length: 150 }, (_, i) => order(NOW - (150 - i) * HOUR, { c: `v${i}` }));
    const list = value(definition('unique_list', { property: 'c' }), many) as string[];
    expect(list).toHaveLength(100);
    expect(list[0]).toBe('v0');
    expect(list[99]).toBe('v99');
    expect(value(definition('unique_count', { property: 'c' }), many)).toBe(150);
    expect(value(definition('unique_list', { property: 'c' }), [])).toEqual([]);
  });

  it('first/last event time as ISO-8601 UTC, readable by segments with within_last', () => {
    const events = [order(NOW - 3 * DAY), order(NOW - 10 * DAY)];
    const lastSeen = value(definition('last_event_time'), events);
    expect(lastSeen).toBe('2024-06-12T12:00:00.000Z');
    expect(value(definition('first_event_time'), events)).toBe('2024-06-05T12:00:00.000Z');
    expect(value(definition('last_event_time'), [])).toBeUndefined();
    const profile = { profileId: 'p', traits: { last_order_at: lastSeen }, identifierTypes: new Set<string>(), consents: new Map(), memberships: new Set<string>(), events: [] };
    const recent = { kind: 'trait' as const, trait: 'last_order_at', op: 'within_last' as const, duration: { amount: 7, unit: 'days' as const } };
    expect(evaluateSegment(recent, profile, NOW)).toEqual({ member: true, recheckAt: NOW + 4 * DAY });
  });

  it('recheckAt: the first departure from a last window that changes the value; none without one', () => {
    const events = [order(NOW - 6 * DAY, { revenue: 10, c: 'a' }), order(NOW - 5 * DAY, { revenue: 0, c: 'a' }), order(NOW - 2 * DAY, { revenue: 5, c: 'b' })];
    const at = (d: ComputedTraitDefinition) => evaluateComputedTrait(d, events, NOW).recheckAt;
    expect(at(definition('count', { window: last(7) }))).toBe(NOW + DAY);
    expect(at(definition('count'))).toBeNull();
    expect(at(definition('count', { window: { kind: 'range', from: '2024-06-01' } }))).toBeNull();
    expect(at(definition('sum', { property: 'revenue', window: last(7) }))).toBe(NOW + DAY);
    // The 0 leaving does not change max or sum; the 10 leaving changes max at once.
    expect(at(definition('max', { property: 'revenue', window: last(7) }))).toBe(NOW + DAY);
    expect(at(definition('min', { property: 'revenue', window: last(7) }))).toBe(NOW + 2 * DAY);
    // a, a, b: when the first a leaves, a and b tie and the more recent b wins.
    expect(at(definition('most_frequent', { property: 'c', window: last(7) }))).toBe(NOW + DAY);
    expect(at(definition('last_event_time', { window: last(7) }))).toBe(NOW + 5 * DAY);
    expect(at(definition('first_event_time', { window: last(7) }))).toBe(NOW + DAY);
    expect(evaluateComputedTrait(definition('count', { window: last(7) }), [], NOW)).toEqual({ value: 0, recheckAt: null });
    // At the re-check the value has indeed changed.
    const d = definition('most_frequent', { property: 'c', window: last(7) });
    expect(value(d, events, NOW + DAY - 1)).toBe('a');
    expect(value(d, events, NOW + DAY)).toBe('b');
    // Every event has c = 'a': the list stays ['a'] until the window empties.
    const same = [order(NOW - 6 * DAY, { c: 'a' }), order(NOW - 2 * DAY, { c: 'a' })];
    expect(evaluateComputedTrait(definition('unique_list', { property: 'c', window: last(7) }), same, NOW)).toEqual({ value: ['a'], recheckAt: NOW + 5 * DAY });
  });

  it('recheckAt: a time-dependent filter re-checks when an event starts to match', () => {
    const match: EventMatch = { ...ORDERS, filters: [{ property: 'delivery', op: 'within_last', duration: { amount: 1, unit: 'days' } }] };
    const events = [order(NOW - DAY, { delivery: new Date(NOW + 3 * HOUR).toISOString() })];
    expect(evaluateComputedTrait(definition('count', { match }), events, NOW)).toEqual({ value: 0, recheckAt: NOW + 3 * HOUR });
    expect(evaluateComputedTrait(definition('count', { match }), events, NOW + 3 * HOUR)).toEqual({ value: 1, recheckAt: NOW + 27 * HOUR });
  });

  it('agrees with the segment measures over the same events (one meaning)', () => {
    const events = [order(NOW - 6 * DAY, { revenue: '10' }), order(NOW - 5 * DAY, { revenue: 2.5 }), order(NOW - 40 * DAY, { revenue: 7 }), order(NOW - DAY, { revenue: 'x' })];
    const profile = { profileId: 'p', traits: {}, identifierTypes: new Set<string>(), consents: new Map(), memberships: new Set<string>(), events };
    for (const kind of ['sum', 'avg', 'min', 'max'] as const) {
      const computed = value(definition(kind, { property: 'revenue', window: last(30) }), events) as number;
      const segment = { kind: 'event' as const, match: ORDERS, window: last(30), measure: { kind, property: 'revenue', test: { op: 'eq' as const, value: computed } } };
      expect(evaluateSegment(segment, profile, NOW).member, kind).toBe(true);
    }
  });

  it('recheckAt is never late (random definitions and histories)', () => {
    const rng = createRng(7);
    const kinds: ComputedTraitDefinition['kind'][] = [
      'count', 'sum', 'avg', 'min', 'max', 'most_frequent', 'first_value', 'last_value', 'unique_list', 'unique_count', 'first_event_time', 'last_event_time',
    ];
    const spans = [HOUR, DAY, 7 * DAY];
    let rechecks = 0;
    for (let round = 0; round < 800; round++) {
      const kind = rng.pick(kinds);
      const span = rng.pick(spans);
      const filters = rng.next() < 0.2 ? [{ property: 'when', op: 'within_last' as const, duration: { amount: 2, unit: 'days' as const } }] : [];
      const d = definition(kind, { property: rng.pick(['v', 'context.channel']), window: { kind: 'last', duration: { amount: span / HOUR, unit: 'hours' } }, match: { ...ORDERS, filters } });
      const events = Array.from({ length: rng.int(0, 40) }, () =>
        order(NOW - rng.int(0, 10) * rng.pick([HOUR, DAY]) + rng.pick([0, 0, 1, -1]), {
          v: rng.pick([1, 2, 2.5, '3', 'a', 'b', null, true]),
          when: new Date(NOW + rng.int(-3, 3) * DAY).toISOString(),
        }),
      );
      const { value: now, recheckAt } = evaluateComputedTrait(d, events, NOW);
      const moments = new Set<number>();
      for (const event of events) {
        for (const instant of [event.timestamp, Date.parse(String(event.properties!.when))]) {
          for (const shift of [0, span, durationMs({ amount: 2, unit: 'days' })]) for (const nudge of [-1, 0, 1]) moments.add(instant + shift + nudge);
        }
      }
      const horizon = recheckAt ?? NOW + 30 * DAY;
      for (const t of [...moments].filter((m) => m > NOW && m < horizon)) {
        expect(evaluateComputedTrait(d, [...events], t).value, `${JSON.stringify(d)} at ${t - NOW}`).toEqual(now);
      }
      if (recheckAt !== null) {
        rechecks++;
        expect(recheckAt).toBeGreaterThan(NOW);
      }
    }
    expect(rechecks).toBeGreaterThan(300);
  });
});
