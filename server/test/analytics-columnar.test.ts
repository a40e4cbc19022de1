import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ColumnarStore } from '../src/analytics/columnar/store.ts';
import { runFunnel, type FunnelQuery, type FunnelResult } from '../src/analytics/funnel.ts';
import { createSource } from '../src/workspaces/store.ts';
import { insertResolvedEvents, random, sendAndResolve, setTimeZone, type RawEvent } from './analytics-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * The columnar engine (analytics/columnar) against the PostgreSQL path on the same data: random
 * histories, every order mode, exclusions, breakdowns by source and property with each
 * attribution, trends and drop-off lists — step counts and breakdowns equal, times equal to the
 * microsecond. Then the copy follows PostgreSQL: new events, a merge, deleted events, a rebuild.
 */

const MIN = 60_000;
const NAMES = ['A', 'B', 'C', 'D', 'X'];
const CATEGORIES = ['phone', 'tv', 'laptop', null];

describe('columnar funnel engine equals the PostgreSQL path', () => {
  let t: TestApp;
  let store: ColumnarStore;
  const start = Date.parse('2026-05-01T00:00:00Z');
  const range = { from: '2026-05-02', to: '2026-05-09' };
  const now = new Date('2026-06-01T00:00:00Z');
  const profiles: string[] = [];

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'error' });
    await setTimeZone(t, 'Asia/Shanghai');
    const web = await createSource(t.db, t.workspace.id, { name: 'Web', kind: 'web' });
    const app = await createSource(t.db, t.workspace.id, { name: 'App', kind: 'app' });
    const next = random(7);
    const events: Array<RawEvent & { source: string }> = [];
    for (let p = 0; p < 160; p++) {
      const profileId = crypto.randomUUID();
      profiles.push(profileId);
      const count = p < 130 ? 1 + Math.floor(next() * 14) : 30 + Math.floor(next() * 50);
      for (let k = 0; k < count; k++) {
        // Whole minutes over 12 days: ties in time happen and are ordered by seq.
        const at = start + Math.floor(next() * 12 * 24 * 60) * MIN;
        const page = next() < 0.15;
        const category = CATEGORIES[Math.floor(next() * CATEGORIES.length)];
        events.push({
          profileId,
          event: page ? 'Home' : NAMES[Math.floor(next() * NAMES.length)]!,
          type: page ? 'page' : 'track',
          at,
          properties: category === null ? {} : { category },
          source: next() < 0.5 ? web.source.id : app.source.id,
        });
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

  const both = async (query: FunnelQuery) => {
    const columnar = await runFunnel(t.db, t.workspace.id, query, now, { columnar: store });
    const postgres = await runFunnel(t.db, t.workspace.id, query, now, { columnar: null });
    expect(columnar.engine?.name).toBe('columnar');
    expect(postgres.engine?.name).toBe('postgres');
    return { columnar, postgres };
  };
  const comparable = (result: FunnelResult) => {
    const { engine: _engine, ...rest } = result;
    return rest;
  };
  const expectSame = (columnar: FunnelResult, postgres: FunnelResult) => {
    // Counts, breakdowns, trends and drop-off lists exactly; times (seconds, floating point) to the microsecond.
    expect(columnar.steps.map((s) => s.count)).toEqual(postgres.steps.map((s) => s.count));
    expect(columnar.breakdown?.map((g) => [g.value, g.steps.map((s) => s.count)])).toEqual(postgres.breakdown?.map((g) => [g.value, g.steps.map((s) => s.count)]));
    const rounded = JSON.parse(JSON.stringify(comparable(columnar), (_key, value) => (typeof value === 'number' ? Math.round(value * 1e6) / 1e6 : value)));
    const expected = JSON.parse(JSON.stringify(comparable(postgres), (_key, value) => (typeof value === 'number' ? Math.round(value * 1e6) / 1e6 : value)));
    expect(rounded).toEqual(expected);
  };

  const steps = [{ event: 'A' }, { event: 'B' }, { event: 'C' }, { event: 'D' }];
  for (const order of ['sequential', 'strict', 'any'] as const) {
    for (const withExclusion of [false, true]) {
      it(`${order}${withExclusion ? ' with an exclusion' : ''}: same answer, with trend and source breakdown`, async () => {
        const query: FunnelQuery = {
          range,
          steps,
          order,
          conversionWindow: { amount: 2, unit: 'days' },
          breakdown: { kind: 'source' },
          trendInterval: 'day',
          ...(withExclusion ? { exclusions: [{ event: { event: 'X' }, fromStep: 2, toStep: 4 }] } : {}),
        };
        const { columnar, postgres } = await both(query);
        expect(postgres.steps[0]!.count).toBeGreaterThan(20);
        expect(postgres.steps[1]!.count).toBeGreaterThan(0);
        expectSame(columnar, postgres);
      });
    }
  }

  for (const attribution of ['first_touch', 'last_touch', 2] as const) {
    it(`property breakdown, ${attribution} attribution, page steps and drop-off list: same answer`, async () => {
      const query: FunnelQuery = {
        range,
        steps: [{ event: 'A' }, { type: 'page', event: 'Home' }, { event: 'C' }],
        conversionWindow: { amount: 36, unit: 'hours' },
        breakdown: { kind: 'property', property: 'category' },
        breakdownAttribution: attribution,
        dropOff: { step: 1, limit: 5 },
      };
      const { columnar, postgres } = await both(query);
      expect(postgres.breakdown!.length).toBeGreaterThan(2);
      expect(postgres.dropOff!.truncated).toBe(true);
      expectSame(columnar, postgres);
    });
  }

  it('only some source kinds, and a 10-step funnel with a long window: same answer', async () => {
    const ten = { range, steps: [...steps, ...steps, { event: 'A' }, { event: 'B' }], conversionWindow: { amount: 1, unit: 'weeks' as const }, sourceKinds: ['app' as const] };
    const { columnar, postgres } = await both(ten);
    expect(postgres.steps[4]!.count).toBeGreaterThan(0);
    expectSame(columnar, postgres);
  });

  it('declines what it cannot answer (PostgreSQL answers, saying why), and answers only while fresh', async () => {
    const filtered = await runFunnel(t.db, t.workspace.id, { range, steps: [{ event: 'A', filters: [{ property: 'category', op: 'eq', value: 'tv' }] }, { event: 'B' }] }, now, { columnar: store });
    expect(filtered.engine).toEqual({ name: 'postgres', reason: 'property filters on a step or exclusion' });
    const byTrait = await runFunnel(t.db, t.workspace.id, { range, steps, breakdown: { kind: 'trait', trait: 'city' } }, now, { columnar: store });
    expect(byTrait.engine?.reason).toBe('a trait breakdown');
    store.maxLagMs = 0;
    const stale = await runFunnel(t.db, t.workspace.id, { range, steps }, new Date(Date.now() + 1000), { columnar: store });
    store.maxLagMs = 30_000;
    expect(stale.engine?.name).toBe('postgres');
    expect(stale.engine?.reason).toMatch(/last synced/);
  });

  it('follows PostgreSQL: new events, a merge, deleted events; a rebuild gives the same copy', async () => {
    const query: FunnelQuery = { range, steps: [{ event: 'A' }, { event: 'B' }], conversionWindow: { amount: 3, unit: 'days' }, dropOff: { step: 1, limit: 1000 } };
    // A new profile that did A, and another that did B just after: two profiles, two drop-offs…
    await sendAndResolve(t, [
      { type: 'track', event: 'A', anonymousId: 'merge-anon', timestamp: '2026-05-05T03:00:00Z', messageId: 'merge-1-a' },
      { type: 'track', event: 'B', userId: 'merge-2', timestamp: '2026-05-05T04:00:00Z', messageId: 'merge-2-b' },
    ]);
    const profileOf = async (type: string, value: string) =>
      (await t.db.query<{ profile_id: string }>(`select profile_id from profile_identifiers where workspace_id = $1 and type = $2 and value = $3`, [t.workspace.id, type, value])).rows[0]!
        .profile_id;
    const [p1, p2] = [await profileOf('anonymous_id', 'merge-anon'), await profileOf('user_id', 'merge-2')];
    expect(p1).not.toBe(p2);
    let { columnar, postgres } = await both(query);
    expect(columnar.engine?.name).toBe('columnar');
    expect(columnar.dropOff!.profileIds).not.toContain(p1); // not synced yet
    await store.catchUp(t.db);
    ({ columnar, postgres } = await both(query));
    expectSame(columnar, postgres);
    expect(columnar.dropOff!.profileIds).toContain(p1);
    // …until they are merged: one profile that converted.
    // (an identify call linking the anonymous id to the user: identity resolution merges them)
    await sendAndResolve(t, [{ type: 'identify', userId: 'merge-2', anonymousId: 'merge-anon', timestamp: '2026-05-05T05:00:00Z', messageId: 'merge-login' }]);
    expect(await profileOf('anonymous_id', 'merge-anon')).toBe(await profileOf('user_id', 'merge-2'));
    const outcome = await store.catchUp(t.db);
    expect(outcome.refreshedProfiles).toBeGreaterThanOrEqual(2);
    ({ columnar, postgres } = await both(query));
    expectSame(columnar, postgres);
    expect(columnar.dropOff!.profileIds).not.toContain(p1);
    expect(columnar.dropOff!.profileIds).not.toContain(p2);
    // Erasure deletes a profile's events: the trigger of 0043 logs them, the sync deletes them here.
    const erased = profiles[3]!;
    const before = (await store.state()).events;
    const { rowCount } = await t.db.query('delete from events where workspace_id = $1 and profile_id = $2', [t.workspace.id, erased]);
    expect(rowCount).toBeGreaterThan(0);
    expect((await store.catchUp(t.db)).deleted).toBe(rowCount);
    expect((await store.state()).events).toBe(before - rowCount!);
    ({ columnar, postgres } = await both({ ...query, steps: [{ event: 'A' }, { event: 'B' }, { event: 'C' }] }));
    expectSame(columnar, postgres);
    // Rebuilt from scratch (by COPY, as a new copy far behind would be): the same copy.
    store.bulkThreshold = 0;
    await store.rebuild(t.db);
    expect((await store.state()).events).toBe(before - rowCount!);
    const rebuilt = await runFunnel(t.db, t.workspace.id, query, now, { columnar: store });
    expectSame(rebuilt, postgres.steps.length === 3 ? (await both(query)).postgres : postgres);
  });
});
