import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportContext, runBudgeted } from '../src/analytics/run.ts';
import { createSource } from '../src/workspaces/store.ts';
import { analyticsCaller, insertResolvedEvents, random, sendAndResolve, setTimeZone, type RawEvent } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Funnels over a hand-built history sent through the collection API and resolved by identity, in a
 * workspace in Asia/Shanghai (UTC+8). Every expected number is worked out in the comments from the
 * history; a second part checks random histories against a plain TypeScript reimplementation.
 */

const T = Date.parse('2026-03-10T02:00:00Z');
const MIN = 60_000;
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
let counter = 0;
const track = (who: Record<string, unknown>, event: string, at: number, properties: Record<string, unknown> = {}) => ({
  type: 'track',
  event,
  properties,
  timestamp: iso(at),
  messageId: `m-${++counter}`,
  ...who,
});

const STEPS = [{ event: 'Product Viewed' }, { event: 'Product Added' }, { event: 'Checkout Started' }, { event: 'Order Completed' }];
const MARCH = { from: '2026-03-01', to: '2026-03-31' };

describe('funnels (hand-built history)', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  const profileOf = async (userId: string) =>
    (await t.db.query(`select profile_id from profile_identifiers where workspace_id = $1 and type = 'user_id' and value = $2`, [t.workspace.id, userId])).rows[0]
      .profile_id as string;

  beforeAll(async () => {
    t = await startTestApp({ logLevel: 'error' });
    await setTimeZone(t, 'Asia/Shanghai');
    post = analyticsCaller(t, await serverKey(t));
    const u = (userId: string) => ({ userId });
    const viewed = (who: Record<string, unknown>, at: number, category: string) => track(who, 'Product Viewed', at, { category });
    await sendAndResolve(t, [
      // alice: all four steps within an hour → reaches 4 in every order mode.
      viewed(u('alice'), T, 'phone'), track(u('alice'), 'Product Added', T + 5 * MIN), track(u('alice'), 'Checkout Started', T + 10 * MIN), track(u('alice'), 'Order Completed', T + 60 * MIN),
      // bob: skips checkout → sequential 2, strict 2, any order 3.
      viewed(u('bob'), T, 'phone'), track(u('bob'), 'Product Added', T + 5 * MIN), track(u('bob'), 'Order Completed', T + 10 * MIN),
      // carol: adds before viewing → sequential 1, strict 1, any order 4.
      track(u('carol'), 'Product Added', T), viewed(u('carol'), T + MIN, 'tv'), track(u('carol'), 'Checkout Started', T + 2 * MIN), track(u('carol'), 'Order Completed', T + 3 * MIN),
      // dan: adds 20 days later, outside the 14-day window → 1 everywhere.
      viewed(u('dan'), T, 'tv'), track(u('dan'), 'Product Added', T + 20 * DAY),
      // eve: a page view between view and add → sequential 3, strict 1, any order 3.
      viewed(u('eve'), T, 'phone'), { type: 'page', name: 'Home', userId: 'eve', timestamp: iso(T + MIN), messageId: 'eve-page' },
      track(u('eve'), 'Product Added', T + 2 * MIN), track(u('eve'), 'Checkout Started', T + 3 * MIN),
      // frank: views anonymously, then logs in (identify merges the anonymous id), then adds → 2 on one profile.
      viewed({ anonymousId: 'anon-f' }, T, 'tv'), { type: 'identify', userId: 'frank', anonymousId: 'anon-f', timestamp: iso(T + MIN), messageId: 'frank-login' },
      track(u('frank'), 'Product Added', T + 2 * MIN),
      // grace: redeems a coupon between view and add → 2, or excluded with the coupon exclusion.
      viewed(u('grace'), T, 'phone'), track(u('grace'), 'Coupon Redeemed', T + MIN), track(u('grace'), 'Product Added', T + 2 * MIN),
      // hank: 01:00 on 1 March in Shanghai, still 28 February in UTC → in March only in the workspace's zone.
      viewed(u('hank'), Date.parse('2026-02-28T17:00:00Z'), 'phone'), track(u('hank'), 'Product Added', Date.parse('2026-02-28T17:05:00Z')),
    ]);
  });
  afterAll(async () => t?.close());

  const counts = (result: { steps: Array<{ count: number }> }) => result.steps.map((s) => s.count);

  it('sequential: counts, rates, time between steps and time to convert', async () => {
    const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS });
    // step 1: all 8; step 2: alice bob eve frank grace hank; step 3: alice eve; step 4: alice.
    expect(counts(result)).toEqual([8, 6, 2, 1]);
    expect(result.steps[1].conversionFromFirst).toBeCloseTo(6 / 8);
    expect(result.steps[2].conversionFromPrevious).toBeCloseTo(2 / 6);
    expect(result.steps[2].droppedFromPrevious).toBe(4);
    // view → add gaps: 300 (alice, bob, hank), 120 (eve, frank, grace) → median 210 s.
    expect(result.steps[1].medianSecondsFromPrevious).toBe(210);
    expect(result.timeToConvert.converted).toBe(1);
    expect(result.timeToConvert.medianSeconds).toBe(3600);
    // 3600 s falls in the bucket [3600, 21600).
    expect(result.timeToConvert.distribution.find((b: { upToSeconds: number }) => b.upToSeconds === 6 * 3600).count).toBe(1);
    expect(result.range.timeZone).toBe('Asia/Shanghai');
    expect(result.range.from).toBe('2026-02-28T16:00:00.000Z');
    expect(result.warnings).toEqual([]);
  });

  it('strict order: no other event may come between steps (identify calls are not actions)', async () => {
    const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, order: 'strict' });
    // step 2: alice bob frank hank (eve's page view and grace's coupon break the chain); 3 and 4: alice.
    expect(counts(result)).toEqual([8, 4, 1, 1]);
  });

  it('any order: steps counted in whatever order they came within the window', async () => {
    const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, order: 'any' });
    // ≥2: all but dan; ≥3: alice bob carol eve; 4: alice carol.
    expect(counts(result)).toEqual([8, 7, 4, 2]);
  });

  it('exclusion steps drop attempts with the event between the two steps', async () => {
    const result = await post('/v1/analytics/funnels', {
      range: MARCH,
      steps: STEPS,
      exclusions: [{ event: { event: 'Coupon Redeemed' }, fromStep: 1, toStep: 2 }],
    });
    expect(counts(result)).toEqual([7, 5, 2, 1]);
  });

  it('the conversion window is measured from step 1', async () => {
    const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, conversionWindow: { amount: 7, unit: 'minutes' } });
    // alice's checkout (+10 min) and order fall outside; eve's checkout (+3 min) inside.
    expect(counts(result)).toEqual([8, 6, 1, 0]);
  });

  it('the range is read in the workspace time zone', async () => {
    await setTimeZone(t, 'UTC');
    try {
      const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS });
      expect(counts(result)).toEqual([7, 5, 2, 1]); // without hank
    } finally {
      await setTimeZone(t, 'Asia/Shanghai');
    }
  });

  it('breaks down by a property of the attributed step and by trend period', async () => {
    const result = await post('/v1/analytics/funnels', {
      range: MARCH,
      steps: STEPS,
      breakdown: { kind: 'property', property: 'category' },
      trendInterval: 'day',
    });
    const byValue = Object.fromEntries(result.breakdown.map((b: { value: string; steps: Array<{ count: number }> }) => [b.value, counts(b)]));
    expect(byValue).toEqual({ phone: [5, 5, 2, 1], tv: [3, 1, 0, 0] });
    // Started on 1 March local (hank) and on 10 March (everyone else); converted: alice on the 10th.
    expect(result.trend).toEqual([
      { period: '2026-03-01', started: 1, converted: 0, conversionRate: 0 },
      { period: '2026-03-10', started: 7, converted: 1, conversionRate: 1 / 7 },
    ]);
    // Attributed to the last step reached: Product Added has no category → one null group.
    const last = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, breakdown: { kind: 'property', property: 'category' }, breakdownAttribution: 'last_touch' });
    const lastValues = Object.fromEntries(last.breakdown.map((b: { value: string | null; steps: Array<{ count: number }> }) => [String(b.value), b.steps[0]!.count]));
    expect(lastValues).toEqual({ null: 6, tv: 2 }); // carol and dan stopped at their view
  });

  it('breaks down by the kind of source the attributed event came from', async () => {
    const { rows } = await t.db.query<{ kind: string }>('select distinct s.kind from events e join sources s on s.id = e.source_id where e.workspace_id = $1', [t.workspace.id]);
    expect(rows).toHaveLength(1); // every event here came through the test app's one source
    const overall = counts(await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS }));
    const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, breakdown: { kind: 'source' } });
    expect(result.breakdown.map((b: { value: string | null; steps: Array<{ count: number }> }) => [b.value, counts(b)])).toEqual([[rows[0]!.kind, overall]]);
  });

  it('lists the profiles that dropped after a step', async () => {
    const result = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, dropOff: { step: 2 } });
    const expected = await Promise.all(['bob', 'frank', 'grace', 'hank'].map(profileOf));
    expect(result.dropOff.profileIds).toEqual([...expected].sort());
    expect(result.dropOff.truncated).toBe(false);
  });

  it('flags unknown event names and refuses impossible requests', async () => {
    const typo = await post('/v1/analytics/funnels', { range: MARCH, steps: [{ event: 'Prodct Viewed' }, STEPS[1]] });
    expect(typo.warnings).toEqual([{ field: 'steps.0', message: expect.stringContaining('did you mean "Product Viewed"') }]);
    const tooMany = await post('/v1/analytics/funnels', { range: MARCH, steps: Array(21).fill(STEPS[0]) }, 400);
    expect(tooMany.field).toBe('steps');
    const badExclusion = await post('/v1/analytics/funnels', { range: MARCH, steps: STEPS, exclusions: [{ event: STEPS[0], fromStep: 3, toStep: 2 }] }, 400);
    expect(badExclusion.field).toBe('exclusions.0.toStep');
    const badRange = await post('/v1/analytics/funnels', { range: { from: '2026-02-30', to: '2026-03-01' }, steps: STEPS }, 400);
    expect(badRange).toMatchObject({ error: 'invalid_range', field: 'range.from' });
    const unauthorised = await t.app.inject({ method: 'POST', url: '/v1/analytics/funnels', payload: { range: MARCH, steps: STEPS } });
    expect(unauthorised.statusCode).toBe(401);
  });

  it('answers 503 query_timeout when the time budget runs out', async () => {
    const context = await reportContext(t.db, t.workspace.id, { range: MARCH, timeBudgetMs: 100 }, new Date());
    await expect(runBudgeted(context, 'select pg_sleep(2)', [])).rejects.toMatchObject({ statusCode: 503, code: 'query_timeout' });
    // Within budget the same path answers.
    expect(await runBudgeted(context, 'select 1 as one', [])).toEqual([{ one: 1 }]);
  });
});

// ---- Random histories against a plain reimplementation ------------------------------------------

type Mode = 'sequential' | 'strict' | 'any';
interface Ev {
  at: number;
  order: number;
  mask: number;
}

/** The funnel definition of migration 0040, restated directly: best attempt over every start. */
function naiveReached(events: Ev[], steps: number, windowMs: number, mode: Mode, startBefore: number, exclusion?: { bit: number; from: number; to: number }): number {
  let best = 0;
  events.forEach((start, i) => {
    if (start.at >= startBefore) return;
    const stepBits = (1 << steps) - 1;
    if (mode === 'any' ? (start.mask & stepBits) === 0 : (start.mask & 1) === 0) return;
    const inWindow = events.slice(i).filter((e) => e.at <= start.at + windowMs);
    const positions: number[] = [0];
    if (mode === 'any') {
      const lowestFree = (mask: number, seen: Set<number>) => [...Array(steps).keys()].find((k) => (mask & (1 << k)) !== 0 && !seen.has(k));
      const seen = new Set<number>([lowestFree(start.mask, new Set())!]);
      inWindow.forEach((e, j) => {
        const free = j === 0 ? undefined : lowestFree(e.mask, seen);
        if (free === undefined || positions.length === steps) return;
        seen.add(free);
        positions.push(j);
      });
    } else {
      for (let j = 1; j < inWindow.length && positions.length < steps; j++) {
        if ((inWindow[j]!.mask & (1 << positions.length)) !== 0) positions.push(j);
        else if (mode === 'strict') break;
      }
    }
    if (exclusion && positions.length > exclusion.from) {
      const end = positions.length > exclusion.to ? positions[exclusion.to]! : inWindow.length;
      const between = inWindow.slice(positions[exclusion.from]! + 1, end);
      if (between.some((e) => (e.mask & (1 << exclusion.bit)) !== 0)) return;
    }
    best = Math.max(best, positions.length);
  });
  return best;
}

describe('funnels (random histories against a reimplementation)', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  const NAMES = ['A', 'B', 'C', 'D', 'X'];
  const start = Date.parse('2026-05-01T00:00:00Z');
  const events: RawEvent[] = [];

  beforeAll(async () => {
    t = await startTestApp();
    post = analyticsCaller(t, await serverKey(t));
    const next = random(42);
    // 120 ordinary profiles, then 25 busy ones (30–90 events): many starts per profile, whose
    // chains overlap — where the sequential matcher's per-step pointers and its early stop (0042) act.
    for (let p = 0; p < 145; p++) {
      const profileId = crypto.randomUUID();
      const count = p < 120 ? 1 + Math.floor(next() * 14) : 30 + Math.floor(next() * 61);
      for (let k = 0; k < count; k++) {
        // Whole minutes over 12 days, so ties in time happen and are ordered by seq (insert order).
        const at = start + Math.floor(next() * 12 * 24 * 60) * MIN;
        events.push({ profileId, event: NAMES[Math.floor(next() * NAMES.length)]!, at, properties: { v: Math.floor(next() * 10) } });
      }
    }
    events.sort((a, b) => a.at - b.at);
    const source = await createSource(t.db, t.workspace.id, { name: 'Gen', kind: 'server' });
    await insertResolvedEvents(t.db, t.workspace.id, source.source.id, events);
  });
  afterAll(async () => t?.close());

  const steps = [{ event: 'A', filters: [{ property: 'v', op: 'gte', value: 3 }] }, { event: 'B' }, { event: 'C' }, { event: 'D' }];
  const stepTests: Array<(e: RawEvent) => boolean> = [
    (e) => e.event === 'A' && (e.properties!.v as number) >= 3,
    (e) => e.event === 'B',
    (e) => e.event === 'C',
    (e) => e.event === 'D',
  ];
  const range = { from: '2026-05-02T00:00:00Z', to: '2026-05-09T00:00:00Z' };

  for (const mode of ['sequential', 'strict', 'any'] as const) {
    for (const withExclusion of [false, true]) {
      it(`${mode}${withExclusion ? ' with an exclusion' : ''} equals the reimplementation`, async () => {
        const windowMs = 2 * DAY;
        const from = Date.parse(range.from);
        const to = Date.parse(range.to);
        const byProfile = new Map<string, Ev[]>();
        events.forEach((e, order) => {
          if (e.at < from || e.at >= to + windowMs) return;
          let mask = 0;
          stepTests.forEach((test, k) => (mask |= test(e) ? 1 << k : 0));
          if (withExclusion && e.event === 'X') mask |= 1 << 10;
          if (mask === 0 && mode !== 'strict') return;
          byProfile.set(e.profileId, [...(byProfile.get(e.profileId) ?? []), { at: e.at, order, mask }]);
        });
        const expected = [0, 0, 0, 0];
        for (const list of byProfile.values()) {
          list.sort((a, b) => a.at - b.at || a.order - b.order);
          const reached = naiveReached(list, 4, windowMs, mode, to, withExclusion ? { bit: 10, from: 1, to: 3 } : undefined);
          for (let k = 0; k < reached; k++) expected[k]! += 1;
        }
        const result = await post('/v1/analytics/funnels', {
          range,
          steps,
          order: mode,
          conversionWindow: { amount: 2, unit: 'days' },
          ...(withExclusion ? { exclusions: [{ event: { event: 'X' }, fromStep: 2, toStep: 4 }] } : {}),
        });
        expect(expected[0]).toBeGreaterThan(10);
        expect(result.steps.map((s: { count: number }) => s.count)).toEqual(expected);
      });
    }
  }
});
