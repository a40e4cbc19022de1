import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsCaller, sendAndResolve } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/** Saved, versioned reports: orders on 2 March (2 of them, 100 + 40) and 5 April (1, 60), UTC. */
describe('saved reports', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let key: string;
  const call = (method: 'GET' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    t = await startTestApp();
    key = await serverKey(t);
    post = analyticsCaller(t, key);
    await sendAndResolve(t, [
      { type: 'track', event: 'Order Completed', userId: 'a', timestamp: '2026-03-02T10:00:00Z', messageId: 'o1', properties: { revenue: 100 } },
      { type: 'track', event: 'Order Completed', userId: 'b', timestamp: '2026-03-02T11:00:00Z', messageId: 'o2', properties: { revenue: 40 } },
      { type: 'track', event: 'Order Completed', userId: 'a', timestamp: '2026-04-05T10:00:00Z', messageId: 'o3', properties: { revenue: 60 } },
    ]);
  });
  afterAll(async () => t?.close());

  const gmv = { range: { from: '2026-03-01', to: '2026-03-31' }, interval: 'month', series: [{ event: { event: 'Order Completed' }, measure: 'sum', property: 'revenue' }] };

  it('saves a metric, runs it, versions its changes and keeps earlier versions runnable', async () => {
    const created = await post('/v1/analytics/reports', { key: 'gmv', name: 'GMV', kind: 'trend', definition: gmv }, 201);
    expect(created).toMatchObject({ key: 'gmv', version: 1, kind: 'trend' });
    const run = await post('/v1/analytics/reports/gmv/run', {});
    expect(run.result.series[0].values).toEqual([140]);
    const otherRange = await post('/v1/analytics/reports/gmv/run', { range: { from: '2026-04-01', to: '2026-04-30' } });
    expect(otherRange.result.series[0].values).toEqual([60]);
    // Redefined as order count: version 2; version 1 still answers with revenue.
    const updated = await call('PATCH', '/v1/analytics/reports/gmv', { definition: { ...gmv, series: [{ event: { event: 'Order Completed' } }] } });
    expect(updated.json().version).toBe(2);
    expect((await post('/v1/analytics/reports/gmv/run', {})).result.series[0].values).toEqual([2]);
    expect((await post('/v1/analytics/reports/gmv/run', { version: 1 })).result.series[0].values).toEqual([140]);
    // A rename alone is no new version.
    expect((await call('PATCH', '/v1/analytics/reports/gmv', { name: 'Orders' })).json()).toMatchObject({ name: 'Orders', version: 2 });
    expect((await call('GET', '/v1/analytics/reports')).json().items.map((r: { key: string }) => r.key)).toEqual(['gmv']);
  });

  it('refuses definitions its kind would refuse, duplicates, and runs of archived reports', async () => {
    const bad = await post('/v1/analytics/reports', { key: 'f', name: 'F', kind: 'funnel', definition: { range: { lastDays: 7 }, steps: [{ event: 'A' }] } }, 400);
    expect(bad).toMatchObject({ error: 'invalid_definition', field: 'definition.steps' });
    await post('/v1/analytics/reports', { key: 'dup', name: 'D', kind: 'trend', definition: gmv }, 201);
    expect((await post('/v1/analytics/reports', { key: 'dup', name: 'D', kind: 'trend', definition: gmv }, 409)).field).toBe('key');
    expect((await call('DELETE', '/v1/analytics/reports/dup')).json().status).toBe('archived');
    expect((await post('/v1/analytics/reports/dup/run', {}, 409)).error).toBe('archived');
    expect((await post('/v1/analytics/reports/nope/run', {}, 404)).error).toBe('not_found');
    expect((await post('/v1/analytics/reports/gmv/run', { version: 9 }, 404)).field).toBe('version');
  });

  it('a trend series can name a metric (a saved one-series trend) instead of repeating its definition', async () => {
    const revenue = { ...gmv, series: [{ event: { event: 'Order Completed' }, measure: 'sum', property: 'revenue' }] };
    await post('/v1/analytics/reports', { key: 'revenue', name: 'Gross merchandise value', kind: 'trend', definition: revenue }, 201);
    const spring = { range: { from: '2026-03-01', to: '2026-04-30' }, interval: 'month' };
    const result = await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'revenue' } }, { event: { event: 'Order Completed' }, measure: 'unique' }], formulas: [{ name: 'per buyer', expression: 'A / B' }] });
    // March: 100 + 40 from a and b; April: 60 from a.
    expect(result.series.map((x: { label: string; measure: string; values: number[] }) => [x.label, x.measure, x.values])).toEqual([
      ['Gross merchandise value', 'sum', [140, 60]],
      ['Order Completed', 'unique', [2, 1]],
    ]);
    expect(result.formulas[0].values).toEqual([70, 60]);
    // Redefined as the largest order: new version; the query follows it unless it pins version 1.
    await call('PATCH', '/v1/analytics/reports/revenue', { definition: { ...gmv, series: [{ event: { event: 'Order Completed' }, measure: 'max', property: 'revenue' }] } });
    expect((await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'revenue' } }] })).series[0].values).toEqual([100, 60]);
    expect((await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'revenue', version: 1 } }] })).series[0].values).toEqual([140, 60]);
  });

  it('refuses a metric that is unknown, not a one-series trend, or given with its own measure', async () => {
    await post('/v1/analytics/reports', { key: 'two', name: 'Two', kind: 'trend', definition: { ...gmv, series: [gmv.series[0], gmv.series[0]] } }, 201);
    const spring = { range: { from: '2026-03-01', to: '2026-04-30' }, interval: 'month' };
    expect(await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'nope' } }] }, 400)).toMatchObject({ error: 'unknown_metric', field: 'series.0.metric.key' });
    expect(await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'two' } }] }, 400)).toMatchObject({ error: 'invalid_metric', field: 'series.0.metric.key' });
    expect(await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'gmv', version: 7 } }] }, 400)).toMatchObject({ error: 'unknown_metric', field: 'series.0.metric.version' });
    expect(await post('/v1/analytics/trends', { ...spring, series: [{ metric: { key: 'gmv' }, measure: 'unique' }] }, 400)).toMatchObject({ field: 'series.0.metric' });
    expect(await post('/v1/analytics/trends', { ...spring, series: [{}] }, 400)).toMatchObject({ field: 'series.0' });
  });
});
