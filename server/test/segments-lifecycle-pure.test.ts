import { describe, expect, it } from 'vitest';
import { nextRunAfter, scheduleError } from '../src/segments/cron.ts';
import { dependencyOrder, directUsers, findCycle, referencedBy } from '../src/segments/dependencies.ts';
import { parseSegment } from '../src/segments/language/parse.ts';
import { timeSensitiveData } from '../src/segments/rechecks.ts';

const DAY = 86_400_000;
function sensitivity(text: string) {
  const parsed = parseSegment(text);
  if (!parsed.ok) throw new Error(parsed.error.message);
  const data = timeSensitiveData(parsed.condition);
  return { traits: data.traits, events: data.events.map((e) => [e.match.type, e.match.name ?? null, e.horizonMs]) };
}

describe('in_segment graph', () => {
  // a uses b and c; b uses c; d uses a; e stands alone.
  const uses = new Map<string, string[]>([
    ['a', ['b', 'c']],
    ['b', ['c']],
    ['c', []],
    ['d', ['a']],
    ['e', []],
  ]);

  it('finds the segments that read one, directly or through others', () => {
    expect(referencedBy(uses, 'c').sort()).toEqual(['a', 'b', 'd']);
    expect(referencedBy(uses, 'a')).toEqual(['d']);
    expect(referencedBy(uses, 'e')).toEqual([]);
    expect(directUsers(uses, 'c')).toEqual(['a', 'b']);
  });

  it('orders dependents after what they read', () => {
    const order = dependencyOrder(uses, ['d', 'a', 'b']);
    expect(order).toEqual(['b', 'a', 'd']);
    expect(dependencyOrder(uses, ['a', 'b', 'c', 'd', 'e'])).toEqual(['c', 'b', 'a', 'd', 'e']);
  });

  it('reports a cycle through the changed segment as a path', () => {
    expect(findCycle(uses, 'a')).toBeNull();
    const withCycle = new Map(uses).set('c', ['d']);
    expect(findCycle(withCycle, 'c')).toEqual(['c', 'd', 'a', 'b', 'c']);
    expect(findCycle(new Map([['x', ['x']]]), 'x')).toEqual(['x', 'x']);
    expect(() => dependencyOrder(withCycle, ['a', 'b', 'c', 'd'])).toThrow(/cycle/);
  });
});

describe('periodic schedules', () => {
  it('reads the cron in the workspace time zone', () => {
    // 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before.
    expect(nextRunAfter('0 2 * * *', 'Asia/Shanghai', new Date('2026-03-01T00:00:00Z')).toISOString()).toBe('2026-03-01T18:00:00.000Z');
    expect(nextRunAfter('0 2 * * *', 'UTC', new Date('2026-03-01T00:00:00Z')).toISOString()).toBe('2026-03-01T02:00:00.000Z');
    expect(nextRunAfter('@daily', 'Asia/Shanghai', new Date('2026-03-01T00:00:00Z')).toISOString()).toBe('2026-03-01T16:00:00.000Z');
  });

  it('runs strictly after the given instant', () => {
    expect(nextRunAfter('0 2 * * *', 'UTC', new Date('2026-03-01T02:00:00Z')).toISOString()).toBe('2026-03-02T02:00:00.000Z');
  });

  it('follows daylight saving time changes', () => {
    // New York moves from UTC-5 to UTC-4 on 8 March 2026: 02:30 local does not exist that day,
    // and 09:00 local is 14:00 UTC before and 13:00 UTC after.
    expect(nextRunAfter('0 9 * * *', 'America/New_York', new Date('2026-03-07T12:00:00Z')).toISOString()).toBe('2026-03-07T14:00:00.000Z');
    expect(nextRunAfter('0 9 * * *', 'America/New_York', new Date('2026-03-08T12:00:00Z')).toISOString()).toBe('2026-03-08T13:00:00.000Z');
  });

  it('explains schedules it refuses', () => {
    expect(scheduleError('0 2 * * *', 'Asia/Shanghai')).toBeNull();
    expect(scheduleError('30 1 * * mon-fri', 'UTC')).toBeNull();
    expect(scheduleError('@weekly', 'UTC')).toBeNull();
    expect(scheduleError('0 2 * * * *', 'UTC')).toMatch(/5 fields/);
    expect(scheduleError('every day', 'UTC')).toMatch(/5 fields/);
    expect(scheduleError('61 * * * *', 'UTC')).toMatch(/61/);
    expect(scheduleError('0 0 30 2 *', 'UTC')).not.toBeNull();
    expect(scheduleError('H 2 * * *', 'UTC')).toMatch(/Hashed/);
    expect(scheduleError('@secondly', 'UTC')).toMatch(/macro/);
  });
});

describe('what makes a segment change with the clock alone', () => {
  it('names nothing for conditions without sliding windows or relative dates', () => {
    expect(sensitivity('trait.city = "上海" and event("Order Completed").count() >= 3 and in_segment("x")')).toEqual({ traits: [], events: [] });
    expect(sensitivity('event("Order Completed").exists(between "2026-01-01" and "2026-02-01")')).toEqual({ traits: [], events: [] });
    expect(sensitivity('event("Order Completed").last_time() before "2026-01-01"')).toEqual({ traits: [], events: [] });
  });

  it('bounds events by the widest window or relative time test that reads them', () => {
    expect(sensitivity('event("Order Completed").count(within 90d) >= 3 and not event("App Opened").exists(within 7d)')).toEqual({
      traits: [],
      events: [
        ['track', 'Order Completed', 90 * DAY],
        ['track', 'App Opened', 7 * DAY],
      ],
    });
    expect(sensitivity('event("Order Completed").first_time() within last 30d').events).toEqual([['track', 'Order Completed', 30 * DAY]]);
    expect(sensitivity('event("Order Completed").last_time(within 90d) within last 7d').events).toEqual([['track', 'Order Completed', 90 * DAY]]);
  });

  it('lets any age matter where a property value, not the event time, moves into range', () => {
    expect(sensitivity('event("Order Completed" where delivery_date within next 3d).exists(within 7d)').events).toEqual([['track', 'Order Completed', null]]);
    expect(sensitivity('event("Order Completed").last_value(delivery_date) within next 3d').events).toEqual([['track', 'Order Completed', null]]);
  });

  it('reads a sequence through its first event, for its wait or its window', () => {
    expect(sensitivity('event("Product Added") then not event("Order Completed") within 1d').events).toEqual([['track', 'Product Added', DAY]]);
    expect(sensitivity('event("Product Added") then event("Order Completed") within 1d starting within 30d').events).toEqual([['track', 'Product Added', 30 * DAY]]);
    expect(sensitivity('event("Product Added") then event("Order Completed") within 1d').events).toEqual([]);
  });

  it('names traits read with relative dates', () => {
    expect(sensitivity('trait.birthday anniversary within next 30d and trait.city = "上海" and trait.created_at within last 7d').traits).toEqual([
      'birthday',
      'created_at',
    ]);
  });
});
