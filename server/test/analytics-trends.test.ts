import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsCaller, sendAndResolve, setTimeZone } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Trends over a hand-built history in Asia/Shanghai (UTC+8), with the expected numbers worked out
 * in the comments; one order at 01:00 local on 1 April is still 31 March in UTC.
 */
describe('trends', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let n = 0;
  const order = (userId: string, at: string, revenue: number, channel: string) => ({
    type: 'track', event: 'Order Completed', userId, timestamp: at, messageId: `o-${++n}`, properties: { revenue, channel },
  });
  const open = (userId: string, at: string) => ({ type: 'track', event: 'App Opened', userId, timestamp: at, messageId: `a-${++n}` });

  beforeAll(async () => {
    t = await startTestApp();
    await setTimeZone(t, 'Asia/Shanghai');
    post = analyticsCaller(t, await serverKey(t));
    await sendAndResolve(t, [
      { type: 'identify', userId: 'u1', traits: { city: '上海' }, timestamp: '2026-03-01T00:00:00Z', messageId: 'i1' },
      { type: 'identify', userId: 'u2', traits: { city: '北京' }, timestamp: '2026-03-01T00:00:00Z', messageId: 'i2' },
      order('u1', '2026-03-31T15:00:00Z', 100, 'web'), // 23:00 on 31 March local → March
      order('u1', '2026-03-31T17:00:00Z', 50, 'web'), // 01:00 on 1 April local → April
      order('u2', '2026-03-15T00:00:00Z', 30, 'app'),
      order('u3', '2026-04-10T00:00:00Z', 20, 'web'),
      open('u2', '2026-03-02T00:00:00Z'), open('u2', '2026-03-03T00:00:00Z'), open('u3', '2026-04-02T00:00:00Z'),
    ]);
  });
  afterAll(async () => t?.close());

  const range = { from: '2026-03-01', to: '2026-04-30' };

  it('counts, unique profiles, per-profile averages and property aggregates per month in the workspace zone', async () => {
    const result = await post('/v1/analytics/trends', {
      range,
      interval: 'month',
      series: [
        { event: { event: 'Order Completed' } },
        { event: { event: 'Order Completed' }, measure: 'unique' },
        { event: { event: 'Order Completed' }, measure: 'sum', property: 'revenue' },
        { event: { event: 'Order Completed' }, measure: 'avg', property: 'revenue' },
        { event: { event: 'Order Completed' }, measure: 'max', property: 'revenue' },
        { event: { event: 'Order Completed' }, measure: 'p50', property: 'revenue' },
        { event: { event: 'Order Completed' }, measure: 'per_profile' },
      ],
    });
    expect(result.periods).toEqual(['2026-03-01', '2026-04-01']);
    const byMeasure = Object.fromEntries(result.series.map((s: { measure: string; values: number[]; total: number }) => [s.measure, [s.values, s.total]]));
    // March: u1 100, u2 30; April: u1 50, u3 20.
    expect(byMeasure.total).toEqual([[2, 2], 4]);
    expect(byMeasure.unique).toEqual([[2, 2], 3]);
    expect(byMeasure.sum).toEqual([[130, 70], 200]);
    expect(byMeasure.avg).toEqual([[65, 35], 50]);
    expect(byMeasure.max).toEqual([[100, 50], 100]);
    expect(byMeasure.p50).toEqual([[65, 35], 40]);
    expect(byMeasure.per_profile).toEqual([[1, 1], 4 / 3]);
  });

  it('breaks down by a property, ranks values, and evaluates formulas per period', async () => {
    const result = await post('/v1/analytics/trends', {
      range,
      interval: 'month',
      series: [{ event: { event: 'Order Completed' } }, { event: { event: 'App Opened' } }],
      formulas: [{ name: 'orders per open', expression: 'A / B' }],
    });
    // Opens: March 2 (u2), April 1 (u3).
    expect(result.formulas[0].values).toEqual([1, 2]);
    const broken = await post('/v1/analytics/trends', { range, interval: 'month', series: [{ event: { event: 'Order Completed' } }], breakdown: { kind: 'property', property: 'channel' } });
    expect(broken.series.map((s: { breakdownValue: string; values: number[] }) => [s.breakdownValue, s.values])).toEqual([
      ['web', [1, 2]],
      ['app', [1, 0]],
    ]);
    const byTrait = await post('/v1/analytics/trends', { range, interval: 'month', series: [{ event: { event: 'Order Completed' } }], breakdown: { kind: 'trait', trait: 'city' } });
    expect(byTrait.series.map((s: { breakdownValue: string | null; total: number }) => [s.breakdownValue, s.total])).toEqual([
      ['上海', 2],
      [null, 1],
      ['北京', 1],
    ]);
  });

  it('filters by segment (text of the segment language), source kind and event property', async () => {
    const shanghai = await post('/v1/analytics/trends', {
      range, interval: 'month', series: [{ event: { event: 'Order Completed' }, measure: 'sum', property: 'revenue' }], segment: { text: 'trait.city = "上海"' },
    });
    expect(shanghai.series[0].values).toEqual([100, 50]);
    const stores = await post('/v1/analytics/trends', { range, interval: 'month', series: [{ event: { event: 'Order Completed' } }], sourceKinds: ['store'] });
    expect(stores.series[0].values).toEqual([0, 0]);
    const big = await post('/v1/analytics/trends', {
      range, interval: 'month', series: [{ event: { event: 'Order Completed', filters: [{ property: 'revenue', op: 'gte', value: 50 }] } }],
    });
    expect(big.series[0].values).toEqual([1, 1]);
  });

  it('fills empty days and splits days at local midnight across a daylight-saving change', async () => {
    await setTimeZone(t, 'America/New_York');
    try {
      await sendAndResolve(t, [
        open('u9', '2026-03-08T06:30:00Z'), // 01:30 EST, 8 March
        open('u9', '2026-03-08T07:30:00Z'), // 03:30 EDT, 8 March (the clocks went forward at 02:00)
        open('u9', '2026-03-09T03:30:00Z'), // 23:30 EDT, 8 March
        open('u9', '2026-03-09T04:30:00Z'), // 00:30 EDT, 9 March
      ]);
      const result = await post('/v1/analytics/trends', { range: { from: '2026-03-07', to: '2026-03-09' }, interval: 'day', series: [{ event: { event: 'App Opened' } }] });
      expect(result.periods).toEqual(['2026-03-07', '2026-03-08', '2026-03-09']);
      expect(result.series[0].values).toEqual([0, 3, 1]);
      expect(result.range.from).toBe('2026-03-07T05:00:00.000Z');
      expect(result.range.to).toBe('2026-03-10T04:00:00.000Z');
    } finally {
      await setTimeZone(t, 'Asia/Shanghai');
    }
  });

  it('refuses measures without a property, bad formulas and too many periods', async () => {
    const noProperty = await post('/v1/analytics/trends', { range, interval: 'day', series: [{ event: { event: 'Order Completed' }, measure: 'sum' }] }, 400);
    expect(noProperty.field).toBe('series.0.property');
    const badFormula = await post('/v1/analytics/trends', { range, interval: 'day', series: [{ event: { event: 'Order Completed' } }], formulas: [{ name: 'x', expression: 'A / C' }] }, 400);
    expect(badFormula).toMatchObject({ error: 'invalid_formula', field: 'formulas.0.expression' });
    const tooLong = await post('/v1/analytics/trends', { range: { from: '2020-01-01', to: '2026-01-01' }, interval: 'hour', series: [{ event: { event: 'Order Completed' } }] }, 400);
    expect(tooLong.error).toBe('too_many_periods');
  });
});
