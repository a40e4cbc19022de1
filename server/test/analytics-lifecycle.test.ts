import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { previousPeriod } from '../src/analytics/lifecycle.ts';
import { analyticsCaller, sendAndResolve, setTimeZone } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Lifecycle over a hand-built history in Asia/Shanghai (UTC+8); the server clock is 15 April 2026.
 * Activity (default: any track/page/screen event; identify calls do not count), local dates:
 *   a  orders 10 Dec 2025, 5 Jan, 10 Feb                     (trait tier = gold)
 *   b  orders 20 Jan (a Tuesday), 3 Mar
 *   c  order 1 Feb 01:00 local (= 31 Jan 17:00 UTC: January in UTC, February here)
 *   d  orders 20 Nov 2025, 15 Feb
 *   e  order 20 Dec 2025
 *   f  anonymous page view 5 Dec 2025 (anon-f); as user f an order on 10 Mar — two profiles until
 *      an identify on 11 Mar links anon-f to f (a merge: one profile, active in December and March)
 *   g  only an identify call on 2 Feb — never active
 *   h  page view Monday 2 Feb 01:00 local (= Sunday 1 Feb 17:00 UTC)
 * Monthly, January–March (December is the period before the range):
 *   January   new b · returning a · dormant e, anon-f
 *   February  new c, h · returning a · resurrecting d (active November, not January) · dormant b
 *   March     new f (before the merge) · resurrecting b · dormant a, c, d, h
 * After the merge f's March order belongs to a profile first active in December: resurrecting.
 */
describe('lifecycle', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let n = 0;
  const order = (userId: string, at: string) => ({ type: 'track', event: 'Order Completed', userId, timestamp: at, messageId: `o-${++n}` });

  beforeAll(async () => {
    t = await startTestApp({ now: () => new Date('2026-04-15T00:00:00Z') });
    await setTimeZone(t, 'Asia/Shanghai');
    post = analyticsCaller(t, await serverKey(t));
    await sendAndResolve(t, [
      { type: 'identify', userId: 'a', traits: { tier: 'gold' }, timestamp: '2025-12-01T04:00:00Z', messageId: 'a-id' },
      order('a', '2025-12-10T04:00:00Z'), order('a', '2026-01-05T04:00:00Z'), order('a', '2026-02-10T04:00:00Z'),
      order('b', '2026-01-20T04:00:00Z'), order('b', '2026-03-03T04:00:00Z'),
      order('c', '2026-01-31T17:00:00Z'),
      order('d', '2025-11-20T04:00:00Z'), order('d', '2026-02-15T04:00:00Z'),
      order('e', '2025-12-20T04:00:00Z'),
      { type: 'page', name: 'Home', anonymousId: 'anon-f', timestamp: '2025-12-05T04:00:00Z', messageId: 'f-page' },
      order('f', '2026-03-10T04:00:00Z'),
      { type: 'identify', userId: 'g', timestamp: '2026-02-02T04:00:00Z', messageId: 'g-id' },
      { type: 'page', name: 'Home', userId: 'h', timestamp: '2026-02-01T17:00:00Z', messageId: 'h-page' },
    ]);
  });
  afterAll(async () => t?.close());

  const monthly = { range: { from: '2026-01-01', to: '2026-03-31' }, interval: 'month' };
  const table = (result: { periods: Array<{ period: string; new: number; returning: number; resurrecting: number; dormant: number }> }) =>
    result.periods.map((p) => [p.period, p.new, p.returning, p.resurrecting, p.dormant]);

  it('splits each month into new, returning, resurrecting and dormant', async () => {
    const result = await post('/v1/analytics/lifecycle', monthly);
    // [period, new, returning, resurrecting, dormant]
    expect(table(result)).toEqual([
      ['2026-01-01', 1, 1, 0, 2],
      ['2026-02-01', 2, 1, 1, 1],
      ['2026-03-01', 1, 0, 1, 4],
    ]);
    expect(result.periods[1]).toMatchObject({ active: 4, quickRatio: 3 });
    expect(result.periods[2]).toMatchObject({ active: 2, quickRatio: 0.5 });
    expect(result.range.timeZone).toBe('Asia/Shanghai');
  });

  it('activity can be limited to some events', async () => {
    const result = await post('/v1/analytics/lifecycle', { ...monthly, events: [{ event: 'Order Completed' }] });
    // Without page views anon-f and h are never active: January loses anon-f's dormancy,
    // February h's newness, March h's dormancy.
    expect(table(result)).toEqual([
      ['2026-01-01', 1, 1, 0, 1],
      ['2026-02-01', 1, 1, 1, 1],
      ['2026-03-01', 1, 0, 1, 3],
    ]);
  });

  it('weeks start on Monday in the workspace zone; the same events in UTC fall in other weeks', async () => {
    const weekly = { range: { from: '2026-01-26', to: '2026-02-08' }, interval: 'week' };
    // Shanghai: c (Sunday 1 Feb 01:00) is new in the week of 26 Jan; h (Monday 2 Feb 01:00) in the
    // week of 2 Feb; b (active in the week of 19 Jan) is dormant on 26 Jan, c on 2 Feb.
    expect(table(await post('/v1/analytics/lifecycle', weekly))).toEqual([
      ['2026-01-26', 1, 0, 0, 1],
      ['2026-02-02', 1, 0, 0, 1],
    ]);
    await setTimeZone(t, 'UTC');
    try {
      // UTC: c (Saturday 31 Jan) and h (Sunday 1 Feb) are both new in the week of 26 Jan, both dormant on 2 Feb.
      expect(table(await post('/v1/analytics/lifecycle', weekly))).toEqual([
        ['2026-01-26', 2, 0, 0, 1],
        ['2026-02-02', 0, 0, 0, 2],
      ]);
      // And by month c is new (and so dormant) a month earlier: January has two new profiles, March three dormant.
      expect(table(await post('/v1/analytics/lifecycle', monthly))).toEqual([
        ['2026-01-01', 2, 1, 0, 2],
        ['2026-02-01', 1, 1, 1, 2],
        ['2026-03-01', 1, 0, 1, 3],
      ]);
    } finally {
      await setTimeZone(t, 'Asia/Shanghai');
    }
  });

  it('daily periods: a profile active two days running is returning on the second', async () => {
    const result = await post('/v1/analytics/lifecycle', { range: { from: '2026-02-01', to: '2026-02-03' }, interval: 'day' });
    // 1 Feb: c new (01:00 local). 2 Feb: h new, c dormant. 3 Feb: h dormant.
    expect(table(result)).toEqual([
      ['2026-02-01', 1, 0, 0, 0],
      ['2026-02-02', 1, 0, 0, 1],
      ['2026-02-03', 0, 0, 0, 1],
    ]);
  });

  it('breaks down by a profile trait', async () => {
    const result = await post('/v1/analytics/lifecycle', { ...monthly, breakdown: { kind: 'trait', trait: 'tier' } });
    const gold = result.breakdown.find((b: { value: string | null }) => b.value === 'gold');
    const none = result.breakdown.find((b: { value: string | null }) => b.value === null);
    expect(table(gold)).toEqual([
      ['2026-01-01', 0, 1, 0, 0],
      ['2026-02-01', 0, 1, 0, 0],
      ['2026-03-01', 0, 0, 0, 1],
    ]);
    expect(table(none)).toEqual([
      ['2026-01-01', 1, 0, 0, 2],
      ['2026-02-01', 2, 0, 1, 1],
      ['2026-03-01', 1, 0, 1, 3],
    ]);
  });

  it('an identity merge makes a "new" profile resurrecting: its history is the merged one', async () => {
    await sendAndResolve(t, [{ type: 'identify', userId: 'f', anonymousId: 'anon-f', timestamp: '2026-03-11T04:00:00Z', messageId: 'f-login' }]);
    const result = await post('/v1/analytics/lifecycle', monthly);
    expect(table(result)).toEqual([
      ['2026-01-01', 1, 1, 0, 2],
      ['2026-02-01', 2, 1, 1, 1],
      ['2026-03-01', 0, 0, 2, 4],
    ]);
  });

  it('is a saved report kind, and refuses more periods than it can show', async () => {
    const key = await serverKey(t);
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/analytics/reports',
      headers: { authorization: `Bearer ${key}` },
      payload: { key: 'members-lifecycle', name: 'Members lifecycle', kind: 'lifecycle', definition: monthly },
    });
    expect(created.statusCode).toBe(201);
    const run = await post('/v1/analytics/reports/members-lifecycle/run', {});
    expect(table(run.result)).toEqual(table(await post('/v1/analytics/lifecycle', monthly)));
    const refused = await post('/v1/analytics/lifecycle', { range: { from: '2024-01-01', to: '2026-03-31' }, interval: 'day' }, 400);
    expect(refused).toMatchObject({ error: 'too_many_periods', field: 'interval' });
  });

  it('knows the period before a day, week or month', () => {
    expect(previousPeriod('2026-01-01', 'month')).toBe('2025-12-01');
    expect(previousPeriod('2026-03-01', 'day')).toBe('2026-02-28');
    expect(previousPeriod('2026-01-05', 'week')).toBe('2025-12-29');
  });
});
