import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ColumnarStore, setActiveColumnarStore } from '../src/analytics/columnar/store.ts';
import { runPaths, type PathsQuery, type PathsResult } from '../src/analytics/paths.ts';
import { createSource } from '../src/workspaces/store.ts';
import { analyticsCaller, insertResolvedEvents, random, type RawEvent } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * The columnar paths engine (analytics/columnar/paths.ts) against the PostgreSQL query on the same
 * random histories: after and before the anchor, sessions split by short and long gaps, repeats
 * collapsed or not, excluded labels, an `until` event, some source kinds, a cut list of top paths.
 * Whole minutes make ties in time common (ordered by seq in both), and labels differing only in
 * case or by a non-ASCII letter make the order of tied top paths follow the C collation.
 * The whole answer (nodes, edges, top paths, in order) must be equal.
 */

const MIN = 60_000;
const NAMES = ['A', 'B', 'a', 'Ä', 'Z'];

describe('columnar paths engine equals the PostgreSQL query', () => {
  let t: TestApp;
  let store: ColumnarStore;
  const start = Date.parse('2026-05-02T00:00:00Z');
  const range = { from: '2026-05-02', to: '2026-05-09' };
  const now = new Date('2026-06-01T00:00:00Z');

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'error' });
    const web = await createSource(t.db, t.workspace.id, { name: 'Web', kind: 'web' });
    const app = await createSource(t.db, t.workspace.id, { name: 'App', kind: 'app' });
    const next = random(11);
    const events: Array<RawEvent & { source: string }> = [];
    for (let p = 0; p < 220; p++) {
      const profileId = crypto.randomUUID();
      const count = 1 + Math.floor(next() * 40);
      // Some profiles crowd their events into a few hours (many ties and short gaps), others spread them over days.
      const spanMinutes = p % 3 === 0 ? 240 : p % 3 === 1 ? 24 * 60 : 8 * 24 * 60;
      for (let k = 0; k < count; k++) {
        const page = next() < 0.2;
        events.push({
          profileId,
          event: page ? 'Home' : NAMES[Math.floor(next() * NAMES.length)]!,
          type: page ? 'page' : 'track',
          at: start - 12 * 60 * MIN + Math.floor(next() * spanMinutes) * MIN,
          source: next() < 0.5 ? web.source.id : app.source.id,
        });
      }
    }
    // Sorted by time only: events at the same minute keep their random order, and so their seqs.
    events.sort((a, b) => a.at - b.at);
    for (const source of [web.source.id, app.source.id]) await insertResolvedEvents(t.db, t.workspace.id, source, events.filter((e) => e.source === source));
    store = await ColumnarStore.open(':memory:', { threads: 1 });
    expect((await store.catchUp(t.db)).copied).toBe(events.length);
  });
  afterAll(async () => {
    store?.close();
    await t?.close();
  });

  const withoutEngine = (result: PathsResult) => {
    const { engine: _engine, ...rest } = result;
    return rest;
  };
  const expectSame = async (query: PathsQuery) => {
    const columnar = await runPaths(t.db, t.workspace.id, query, now, { columnar: store });
    const postgres = await runPaths(t.db, t.workspace.id, query, now, { columnar: null });
    expect(columnar.engine?.name).toBe('columnar');
    expect(columnar.engine?.freshAsOf).toBeDefined();
    expect(postgres.engine).toEqual({ name: 'postgres', reason: 'no columnar copy' });
    expect(withoutEngine(columnar)).toEqual(withoutEngine(postgres));
    return postgres;
  };

  const cases: Array<[string, PathsQuery]> = [
    ['after A, 5 steps, 30-minute sessions, repeats collapsed', { range, anchor: { event: 'A' }, steps: 5, topPaths: 200 }],
    ['after A, top 7 paths only (ties cut by path order)', { range, anchor: { event: 'A' }, steps: 3, topPaths: 7 }],
    ['before Z, 3 steps, 45-minute sessions, repeats kept', { range, anchor: { event: 'Z' }, direction: 'before', steps: 3, sessionGap: { amount: 45, unit: 'minutes' }, collapseRepeats: false, topPaths: 50 }],
    ['after page Home until Z, page views excluded, app only, 10 steps, 2-hour sessions', { range, anchor: { type: 'page', event: 'Home' }, until: { event: 'Z' }, exclude: ['a', 'B', "x' or '1' = '1"], sourceKinds: ['app'], steps: 10, sessionGap: { amount: 2, unit: 'hours' } }],
    ['after any page, 1-day sessions', { range, anchor: { type: 'page' }, steps: 4, sessionGap: { amount: 1, unit: 'days' }, topPaths: 30 }],
  ];
  for (const [name, query] of cases) {
    it(`${name}: same answer`, async () => {
      const postgres = await expectSame(query);
      expect(postgres.profiles).toBeGreaterThan(20);
      expect(postgres.nodes.filter((node) => node.step >= 2).length).toBeGreaterThan(0);
      expect(new Set(postgres.topPaths.map((p) => p.count)).size).toBeLessThan(postgres.topPaths.length); // ties in the order
    });
  }

  it('an anchor nobody did (its name quoting itself out of the string): same empty answer', async () => {
    const postgres = await expectSame({ range, anchor: { event: "Never' or type = 'track" } });
    expect(postgres.profiles).toBe(0);
    expect(postgres.topPaths).toEqual([]);
  });

  it('declines what it cannot answer (PostgreSQL answers, saying why), and answers only while fresh', async () => {
    const filter = [{ property: 'category', op: 'eq' as const, value: 'tv' }];
    const cases: Array<[PathsQuery, string]> = [
      [{ range, anchor: { event: 'A', filters: filter } }, 'property filters on the anchor'],
      [{ range, anchor: { event: 'A' }, until: { event: 'Z', filters: filter } }, 'property filters on the until event'],
      [{ range, anchor: { event: 'A' }, segment: { text: 'trait.city = "上海"' } }, 'a segment filter'],
    ];
    for (const [query, reason] of cases) {
      const result = await runPaths(t.db, t.workspace.id, query, now, { columnar: store });
      expect(result.engine).toEqual({ name: 'postgres', reason });
    }
    store.maxLagMs = 0;
    const stale = await runPaths(t.db, t.workspace.id, { range, anchor: { event: 'A' } }, now, { columnar: store });
    store.maxLagMs = 30_000;
    expect(stale.engine?.name).toBe('postgres');
    expect(stale.engine?.reason).toMatch(/last synced/);
    const fresh = await runPaths(t.db, t.workspace.id, { range, anchor: { event: 'A' } }, now, { columnar: store });
    expect(fresh.engine?.name).toBe('columnar');
  });

  it('the API answers from the active copy and says so (engine and freshness in the answer)', async () => {
    const post = analyticsCaller(t, await serverKey(t));
    const query = { range, anchor: { event: 'A' }, steps: 3 };
    setActiveColumnarStore(store);
    try {
      const answer = await post('/v1/analytics/paths', query);
      expect(answer.engine.name).toBe('columnar');
      expect(Date.parse(answer.engine.freshAsOf)).toBe(store.lastSync());
      const { engine: _engine, ...rest } = answer;
      expect(rest).toEqual(withoutEngine(await runPaths(t.db, t.workspace.id, query, new Date(), { columnar: null })));
    } finally {
      setActiveColumnarStore(null);
    }
    expect((await post('/v1/analytics/paths', query)).engine).toEqual({ name: 'postgres', reason: 'no columnar copy' });
  });
});
