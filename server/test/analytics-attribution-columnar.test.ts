import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAttribution, type AttributionQuery, type AttributionResult } from '../src/analytics/attribution.ts';
import { ColumnarStore } from '../src/analytics/columnar/store.ts';
import { createSource } from '../src/workspaces/store.ts';
import { insertResolvedEvents, random, setTimeZone, type RawEvent } from './analytics-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Attribution with its journeys read from the columnar copy (analytics/columnar/attribution.ts)
 * against the PostgreSQL path on the same random histories: conversions and their values in every
 * shape numberOf reads (numbers, numeric strings, text, huge magnitudes, nested, missing), touches
 * tied in time with conversions, a conversion that is also a touchpoint, channels by source and by
 * property, source kinds, every model — the whole answer equal to 1e-9. Then what it declines.
 */

const MIN = 60_000;
const TOUCHES = ['Clicked', 'Opened', 'Home'];
const UTMS = ['email', 'sms', 'ads', 'none', null];
const VALUES: unknown[] = [12.5, 40, '7.25', '-0003.50', 'abc', '1e400', ' 5', true, null, 1e-320];

describe('columnar attribution journeys equal the PostgreSQL path', () => {
  let t: TestApp;
  let store: ColumnarStore;
  const start = Date.parse('2026-05-01T00:00:00Z');
  const range = { from: '2026-05-04', to: '2026-05-10' };
  const now = new Date('2026-06-01T00:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'error' });
    await setTimeZone(t, 'Asia/Shanghai');
    const web = await createSource(t.db, t.workspace.id, { name: 'Web', kind: 'web' });
    const app = await createSource(t.db, t.workspace.id, { name: 'App', kind: 'app' });
    const next = random(11);
    const events: Array<RawEvent & { source: string }> = [];
    for (let p = 0; p < 150; p++) {
      const profileId = crypto.randomUUID();
      const count = p < 120 ? 1 + Math.floor(next() * 12) : 25 + Math.floor(next() * 40);
      for (let k = 0; k < count; k++) {
        // Whole minutes over 12 days: ties in time happen and are ordered by seq.
        const at = start + Math.floor(next() * 12 * 24 * 60) * MIN;
        const roll = next();
        const source = next() < 0.5 ? web.source.id : app.source.id;
        if (roll < 0.2) {
          const value = VALUES[Math.floor(next() * VALUES.length)];
          const properties: Record<string, unknown> = next() < 0.2 ? {} : { revenue: value, order: { total: value } };
          events.push({ profileId, event: 'Order Completed', at, properties, source });
        } else {
          const name = TOUCHES[Math.floor(next() * TOUCHES.length)]!;
          const utm = UTMS[Math.floor(next() * UTMS.length)];
          events.push({ profileId, event: name, type: name === 'Home' ? 'page' : 'track', at, properties: utm === null ? {} : { utm }, source });
        }
      }
    }
    events.sort((a, b) => a.at - b.at);
    for (const source of [web.source.id, app.source.id]) await insertResolvedEvents(t.db, t.workspace.id, source, events.filter((e) => e.source === source));
    store = await ColumnarStore.open(':memory:', { threads: 1 });
    const outcome = await store.catchUp(t.db);
    expect(outcome.copied).toBe(events.length);
  });
  afterAll(async () => {
    store?.close();
    await t?.close();
  });

  const comparable = (result: AttributionResult) =>
    JSON.parse(JSON.stringify({ ...result, engine: undefined }, (_key, value: unknown) => (typeof value === 'number' ? Math.round(value * 1e9) / 1e9 : value))) as unknown;
  const expectSame = async (query: AttributionQuery) => {
    const columnar = await runAttribution(t.db, t.workspace.id, query, now, { columnar: store });
    const postgres = await runAttribution(t.db, t.workspace.id, query, now, { columnar: null });
    expect(columnar.engine?.name).toBe('columnar');
    expect(columnar.engine?.freshAsOf).toBeDefined();
    expect(postgres.engine).toEqual({ name: 'postgres', reason: 'no columnar copy' });
    expect(comparable(columnar)).toEqual(comparable(postgres));
    return postgres;
  };

  it('channel by source, value, every model: same answer', async () => {
    const postgres = await expectSame({
      range,
      conversion: { event: 'Order Completed' },
      valueProperty: 'revenue',
      touchpoints: [{ event: 'Clicked' }, { type: 'page' }],
      channel: { kind: 'source' },
      lookback: { amount: 2, unit: 'days' },
    });
    // The histories exercise what the comparison is about.
    expect(postgres.conversions).toBeGreaterThan(50);
    expect(postgres.unattributed.conversions).toBeGreaterThan(0);
    expect(postgres.unattributed.conversions).toBeLessThan(postgres.conversions);
    expect(postgres.value).not.toBe(0);
    expect(postgres.models.markov!.length).toBe(2);
  });

  it('channel by property, the conversion also a touchpoint, nested value, half-life: same answer', async () => {
    const postgres = await expectSame({
      range,
      conversion: { event: 'Order Completed' },
      valueProperty: 'order.total',
      touchpoints: [{ event: 'Clicked' }, { event: 'Opened' }, { event: 'Order Completed' }],
      channel: { kind: 'property', property: 'utm' },
      direct: 'none',
      lookback: { amount: 36, unit: 'hours' },
      halfLife: { amount: 1, unit: 'days' },
    });
    expect(postgres.models.last_non_direct!.map((credit) => credit.channel)).toContain('none');
    expect(postgres.models.linear!.length).toBeGreaterThan(3);
  });

  it('only some source kinds, a few models, no value: same answer', async () => {
    const postgres = await expectSame({
      range,
      conversion: { event: 'Order Completed' },
      touchpoints: [{ type: 'page', event: 'Home' }, { event: 'Opened' }],
      channel: { kind: 'property', property: 'utm' },
      sourceKinds: ['app'],
      lookback: { amount: 3, unit: 'days' },
      models: ['time_decay', 'markov'],
    });
    expect(Object.keys(postgres.models).sort()).toEqual(['markov', 'time_decay']);
    expect(postgres.conversions).toBeGreaterThan(10);
  });

  it('declines what it cannot answer (PostgreSQL answers, saying why), and answers only while fresh', async () => {
    const base: AttributionQuery = { range, conversion: { event: 'Order Completed' }, touchpoints: [{ event: 'Clicked' }], channel: { kind: 'source' } };
    const reasonOf = async (query: AttributionQuery, at = now) => (await runAttribution(t.db, t.workspace.id, query, at, { columnar: store })).engine;
    expect(await reasonOf({ ...base, conversion: { event: 'Order Completed', filters: [{ property: 'revenue', op: 'gt', value: 10 }] } })).toEqual({
      name: 'postgres',
      reason: 'property filters on the conversion or a touchpoint',
    });
    expect((await reasonOf({ ...base, channel: { kind: 'trait', trait: 'city' } }))?.reason).toBe('a trait channel');
    expect((await reasonOf({ ...base, channel: { kind: 'property', property: 'context.campaign.source' } }))?.reason).toBe('a context channel or value property');
    expect((await reasonOf({ ...base, valueProperty: 'context.revenue' }))?.reason).toBe('a context channel or value property');
    store.maxLagMs = 0;
    const stale = await reasonOf(base, new Date(Date.now() + 1000));
    store.maxLagMs = 30_000;
    expect(stale?.name).toBe('postgres');
    expect(stale?.reason).toMatch(/last synced/);
  });
});
