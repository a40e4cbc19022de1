import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsCaller, sendAndResolve, setTimeZone } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Retention over a hand-built order history in Asia/Shanghai; the server clock is 15 April 2026,
 * so periods after April have not begun. Expected tables are worked out in the comments.
 *   a: 5 Jan, 10 Feb, 2 Apr · b: 20 Jan, 3 Mar · c: 1 Feb 01:00 local (31 Jan in UTC) · d: 20 Dec 2025, 15 Feb
 */
describe('retention', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let n = 0;
  const order = (userId: string, at: string) => ({ type: 'track', event: 'Order Completed', userId, timestamp: at, messageId: `o-${++n}` });

  beforeAll(async () => {
    t = await startTestApp({ now: () => new Date('2026-04-15T00:00:00Z') });
    await setTimeZone(t, 'Asia/Shanghai');
    post = analyticsCaller(t, await serverKey(t));
    await sendAndResolve(t, [
      order('a', '2026-01-05T04:00:00Z'), order('a', '2026-02-10T04:00:00Z'), order('a', '2026-04-02T04:00:00Z'),
      order('b', '2026-01-20T04:00:00Z'), order('b', '2026-03-03T04:00:00Z'),
      order('c', '2026-01-31T17:00:00Z'),
      order('d', '2025-12-20T04:00:00Z'), order('d', '2026-02-15T04:00:00Z'),
    ]);
  });
  afterAll(async () => t?.close());

  const base = { range: { from: '2026-01-01', to: '2026-02-28' }, startEvent: { event: 'Order Completed' }, returnEvent: { event: 'Order Completed' }, interval: 'month', periods: 3 };
  const table = (result: { cohorts: Array<{ cohort: string; size: number; retained: Array<number | null> }> }) =>
    result.cohorts.map((c) => [c.cohort, c.size, c.retained]);

  it('first-time cohorts, returned "on" period k; periods not begun are null', async () => {
    const result = await post('/v1/analytics/retention', base);
    // January: a, b (d's first order was in December). February: c (in the workspace zone).
    expect(table(result)).toEqual([
      ['2026-01-01', 2, [2, 1, 1, 1]],
      ['2026-02-01', 1, [1, 0, 0, null]],
    ]);
    expect(result.average).toEqual([1, 1 / 3, 1 / 3, 1 / 2]);
  });

  it('"on or after" counts a return in period k or any later one', async () => {
    const result = await post('/v1/analytics/retention', { ...base, mode: 'on_or_after' });
    expect(table(result)).toEqual([
      ['2026-01-01', 2, [2, 2, 2, 1]],
      ['2026-02-01', 1, [1, 0, 0, null]],
    ]);
  });

  it('recurring cohorts: every period with a start event', async () => {
    const result = await post('/v1/analytics/retention', { ...base, cohort: 'recurring' });
    // January: a, b; February: a, c, d → a returns in April (k = 2).
    expect(table(result)).toEqual([
      ['2026-01-01', 2, [2, 1, 1, 1]],
      ['2026-02-01', 3, [3, 0, 1, null]],
    ]);
  });

  it('weekly cohorts start on Monday in the workspace zone', async () => {
    const result = await post('/v1/analytics/retention', { ...base, range: { from: '2026-01-26', to: '2026-02-01' }, interval: 'week', periods: 2 });
    // c's first order, 01:00 on Sunday 1 February local, is in the week of Monday 26 January.
    expect(table(result)).toEqual([['2026-01-26', 1, [1, 0, 0]]]);
  });
});
