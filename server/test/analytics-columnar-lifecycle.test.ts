import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ColumnarStore } from '../src/analytics/columnar/store.ts';
import { instantOfLocal } from '../src/analytics/definition.ts';
import { runLifecycle, type LifecycleQuery, type LifecycleResult } from '../src/analytics/lifecycle.ts';
import { createSource } from '../src/workspaces/store.ts';
import { insertResolvedEvents, random, sendAndResolve, setTimeZone, type RawEvent } from './analytics-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * The columnar lifecycle (analytics/columnar/lifecycle.ts) against the PostgreSQL path on the same
 * random history: every interval, in time zones with and without daylight saving (in one a local
 * midnight does not exist) and with a quarter-hour offset, with activity on the instants around local midnight (a period's first and
 * last instants), profiles merged after the copy first read them, activity selectors and source
 * kinds — the same periods and counts. Then what it declines, and staleness.
 */

const MIN = 60_000;
const DAY = 86_400_000;
// Asia/Beirut: on 29 March 2026 local midnight does not exist (00:00 → 01:00), the day starts at 01:00.
const ZONES = ['Asia/Shanghai', 'America/New_York', 'Asia/Kathmandu', 'Europe/London', 'Asia/Beirut'];
const NAMES = ['Order Completed', 'Product Viewed', 'App Opened'];

describe('columnar lifecycle engine equals the PostgreSQL path', () => {
  let t: TestApp;
  let store: ColumnarStore;
  const start = Date.parse('2026-01-01T00:00:00Z');
  // Inside the weekly and daily ranges: the current period is read up to now, later ones have no dormant.
  const now = new Date('2026-05-14T09:00:00Z');
  let merged = 0;

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'error' });
    const web = await createSource(t.db, t.workspace.id, { name: 'Web', kind: 'web' });
    const app = await createSource(t.db, t.workspace.id, { name: 'App', kind: 'app' });
    const next = random(11);
    const events: Array<RawEvent & { source: string }> = [];
    for (let p = 0; p < 150; p++) {
      const profileId = crypto.randomUUID();
      // Some profiles are active now and then over five months, others in bursts: every status occurs.
      const count = 1 + Math.floor(next() * (p % 3 === 0 ? 40 : 8));
      const burst = start + Math.floor(next() * 150) * DAY;
      for (let k = 0; k < count; k++) {
        const day = p % 3 === 1 ? burst + Math.floor(next() * 20) * DAY : start + Math.floor(next() * 150) * DAY;
        let at = day + Math.floor(next() * 24 * 60) * MIN;
        if (next() < 0.35) {
          // A period boundary of one of the zones: local midnight, or the millisecond before.
          const date = new Date(day);
          const zone = ZONES[Math.floor(next() * ZONES.length)]!;
          at = instantOfLocal({ year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() }, zone) - (next() < 0.5 ? 1 : 0);
        }
        const page = next() < 0.2;
        events.push({ profileId, event: page ? 'Home' : NAMES[Math.floor(next() * NAMES.length)]!, type: page ? 'page' : 'track', at, source: next() < 0.5 ? web.source.id : app.source.id });
      }
    }
    // Around the start of Beirut's 29 March (01:00 local = 22:00 UTC): 23:30 and 23:59:59.999 on the 28th, 01:00 on the 29th.
    for (const at of ['2026-03-28T21:30:00Z', '2026-03-28T21:59:59.999Z', '2026-03-28T22:00:00Z']) {
      events.push({ profileId: crypto.randomUUID(), event: 'Order Completed', type: 'track', at: Date.parse(at), source: web.source.id });
    }
    events.sort((a, b) => a.at - b.at);
    for (const source of [web.source.id, app.source.id]) await insertResolvedEvents(t.db, t.workspace.id, source, events.filter((e) => e.source === source));
    // Pairs of profiles (an anonymous visitor in February, a user in April) that become one…
    const pairs = Array.from({ length: 6 }, (_, k) => k);
    await sendAndResolve(t, [
      ...pairs.map((k) => ({ type: 'page', name: 'Landing', anonymousId: `anon-${k}`, timestamp: new Date(Date.parse('2026-02-03T10:00:00Z') + k * 5 * DAY).toISOString(), messageId: `anon-${k}` })),
      ...pairs.map((k) => ({ type: 'track', event: 'Signed Up', userId: `user-${k}`, timestamp: new Date(Date.parse('2026-04-06T10:00:00Z') + k * 3 * DAY).toISOString(), messageId: `user-${k}` })),
    ]);
    store = await ColumnarStore.open(':memory:', { threads: 1 });
    const resolved = async () => Number((await t.db.query<{ n: string }>('select count(*) as n from events where workspace_id = $1 and profile_id is not null', [t.workspace.id])).rows[0]!.n);
    // A sync round copies nothing while PostgreSQL's sequence has not settled (storage/settle.ts, 250 ms): on a loaded machine, another round.
    for (let round = 0; round < 20 && (await store.state()).events < (await resolved()); round++) await store.sync(t.db);
    expect((await store.state()).events).toBe(await resolved());
    // …after the copy read them as two.
    await sendAndResolve(t, pairs.map((k) => ({ type: 'identify', userId: `user-${k}`, anonymousId: `anon-${k}`, timestamp: '2026-04-30T10:00:00Z', messageId: `login-${k}` })));
    for (let round = 0; round < 20 && merged < 12; round++) merged += (await store.sync(t.db)).refreshedProfiles;
  });
  afterAll(async () => {
    store?.close();
    await t?.close();
  });

  const both = async (query: LifecycleQuery) => {
    const columnar = await runLifecycle(t.db, t.workspace.id, query, now, { columnar: store });
    const postgres = await runLifecycle(t.db, t.workspace.id, query, now, { columnar: null });
    expect(columnar.engine?.name).toBe('columnar');
    expect(columnar.engine?.freshAsOf).toBe(new Date(store.lastSync()!).toISOString());
    expect(postgres.engine).toEqual({ name: 'postgres', reason: 'no columnar copy' });
    return { columnar, postgres };
  };
  const comparable = (result: LifecycleResult) => {
    const { engine: _engine, ...rest } = result;
    return rest;
  };
  const total = (result: LifecycleResult, status: 'new' | 'returning' | 'resurrecting' | 'dormant') => result.periods.reduce((sum, p) => sum + p[status], 0);

  it('the copy followed the merges', () => {
    expect(merged).toBeGreaterThanOrEqual(12);
  });

  const ranges: Array<[LifecycleQuery['interval'], { from: string; to: string }]> = [
    ['month', { from: '2026-02-01', to: '2026-05-31' }],
    ['week', { from: '2026-03-02', to: '2026-05-31' }],
    ['day', { from: '2026-04-20', to: '2026-05-20' }],
  ];
  for (const timeZone of ZONES) {
    for (const [interval, range] of ranges) {
      it(`${timeZone}, ${interval}: same periods and counts, every activity and some`, async () => {
        await setTimeZone(t, timeZone);
        const { columnar, postgres } = await both({ range, interval });
        for (const status of ['new', 'returning', 'resurrecting', 'dormant'] as const) expect(total(postgres, status)).toBeGreaterThan(0);
        expect(comparable(columnar)).toEqual(comparable(postgres));
        const some = await both({ range, interval, events: [{ event: 'Order Completed' }, { type: 'page' }], sourceKinds: ['app'] });
        expect(total(some.postgres, 'new')).toBeGreaterThan(0);
        expect(total(some.postgres, 'new')).toBeLessThan(total(postgres, 'new'));
        expect(comparable(some.columnar)).toEqual(comparable(some.postgres));
      });
    }
  }

  it('merged profiles: one profile, first active in February, resurrecting in April (by hand)', async () => {
    await setTimeZone(t, 'UTC');
    // Only the pairs' events: the visitors' Landing pages (3–28 Feb), the users' sign-ups (6–21 Apr).
    const query = { range: { from: '2026-02-01', to: '2026-05-31' }, interval: 'month' as const, events: [{ type: 'page' as const, event: 'Landing' }, { event: 'Signed Up' }] };
    const { columnar, postgres } = await both(query);
    const table = (result: LifecycleResult) => result.periods.map((p) => [p.period, p.new, p.returning, p.resurrecting, p.dormant]);
    // [period, new, returning, resurrecting, dormant]
    expect(table(columnar)).toEqual([
      ['2026-02-01', 6, 0, 0, 0],
      ['2026-03-01', 0, 0, 0, 6],
      ['2026-04-01', 0, 0, 6, 0],
      ['2026-05-01', 0, 0, 0, 6],
    ]);
    expect(comparable(columnar)).toEqual(comparable(postgres));
  });

  it('declines what it cannot answer (PostgreSQL answers, saying why), and answers only while fresh', async () => {
    const range = { from: '2026-03-01', to: '2026-04-30' };
    const filtered = await runLifecycle(t.db, t.workspace.id, { range, interval: 'month', events: [{ event: 'Order Completed', filters: [{ property: 'revenue', op: 'gt', value: 10 }] }] }, now, { columnar: store });
    expect(filtered.engine).toEqual({ name: 'postgres', reason: 'property filters on an activity event' });
    const bySegment = await runLifecycle(t.db, t.workspace.id, { range, interval: 'month', segment: { text: 'trait.city = "Paris"' } }, now, { columnar: store });
    expect(bySegment.engine).toEqual({ name: 'postgres', reason: 'a segment filter' });
    const byTrait = await runLifecycle(t.db, t.workspace.id, { range, interval: 'month', breakdown: { kind: 'trait', trait: 'tier' } }, now, { columnar: store });
    expect(byTrait.engine).toEqual({ name: 'postgres', reason: 'a trait breakdown' });
    store.maxLagMs = 0;
    await new Promise((resolve) => setTimeout(resolve, 5));
    const stale = await runLifecycle(t.db, t.workspace.id, { range, interval: 'month' }, now, { columnar: store });
    store.maxLagMs = 30_000;
    expect(stale.engine?.name).toBe('postgres');
    expect(stale.engine?.reason).toMatch(/last synced/);
    const fresh = await runLifecycle(t.db, t.workspace.id, { range, interval: 'month' }, now, { columnar: store });
    expect(fresh.engine?.name).toBe('columnar');
    expect(comparable(fresh)).toEqual(comparable(stale));
  });
});
