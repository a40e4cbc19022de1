import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { runModel } from '../src/models/run.ts';
import { drainSegmentQueue } from '../src/segments/realtime.ts';
import { drain, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Models on real PostgreSQL through the API and the run the worker executes: 200 customers of
 * four kinds whose right answers are known by construction —
 *   loyal (i % 5 = 0): an order every 12 days for 300 days (the last 1–3 days ago), app opens every 3 days; a fifth of
 *     them are VIPs (the lookalike seed);
 *   lapsed (1): four orders 300–200 days ago, nothing since;
 *   new (2): one order 10 days ago;
 *   reactivated (3): an order 400 days ago, another 5 days ago;
 *   fading (4): app opens every 8 days and an order a month, stopping 40–60 days ago.
 * Scores land as traits that segments read, lifecycle changes land in the timeline, and every run
 * records its parameters and metrics.
 */

const DAY = 86_400_000;
const NOW = Date.parse('2026-03-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const kindOf = (i: number) => (['loyal', 'lapsed', 'new', 'reactivated', 'fading'] as const)[i % 5]!;
const USERS = 200;

function history(i: number): object[] {
  const userId = `u${i}`;
  const events: object[] = [];
  const order = (daysAgo: number, revenue: number) =>
    events.push({ type: 'track', event: 'Order Completed', userId, messageId: `o-${i}-${daysAgo}`, timestamp: iso(NOW - daysAgo * DAY - 3_600_000), properties: { revenue } });
  const open = (daysAgo: number) =>
    events.push({ type: 'track', event: 'App Opened', userId, messageId: `a-${i}-${daysAgo}`, timestamp: iso(NOW - daysAgo * DAY - 7_200_000) });
  const jitter = i % 7;
  switch (kindOf(i)) {
    case 'loyal':
      for (let d = 1 + (jitter % 3); d < 300; d += 12) order(d, 40 + (i % 9) * 5);
      for (let d = 120; d > 0; d -= 3) open(d - (i % 2));
      if (i % 25 === 0) events.push({ type: 'identify', userId, messageId: `vip-${i}`, timestamp: iso(NOW - 200 * DAY), traits: { vip: true } });
      break;
    case 'lapsed':
      for (const d of [300, 270, 230, 200]) order(d - jitter, 30);
      break;
    case 'new':
      order(10, 25 + jitter);
      break;
    case 'reactivated':
      order(400, 50);
      order(5, 60);
      break;
    case 'fading':
      for (let d = 150; d >= 40 + jitter * 3; d -= 8) open(d);
      for (let d = 150; d >= 40 + jitter * 3; d -= 30) order(d, 20);
      break;
  }
  return events;
}

describe('models on a workspace', () => {
  let t: TestApp;
  let call: (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => Promise<LightMyRequestResponse>;
  const profileOf = new Map<string, number>();

  beforeAll(async () => {
    t = await startTestApp({ now: () => new Date(NOW) });
    const key = await serverKey(t);
    call = (method, url, payload) => t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
    const events = Array.from({ length: USERS }, (_, i) => history(i)).flat();
    for (let start = 0; start < events.length; start += 400) await send(t, t.writeKey, events.slice(start, start + 400));
    await drain(t);
    const { rows } = await t.db.query<{ value: string; profile_id: string }>(
      `select value, profile_id from profile_identifiers where workspace_id = $1 and type = 'user_id'`,
      [t.workspace.id],
    );
    for (const row of rows) profileOf.set(row.profile_id, Number(row.value.slice(1)));
  });
  afterAll(async () => t?.close());

  async function traits(key: string): Promise<Map<number, unknown>> {
    const { rows } = await t.db.query<{ profile_id: string; value: unknown }>(`select profile_id, value from profile_traits where workspace_id = $1 and key = $2`, [
      t.workspace.id,
      key,
    ]);
    return new Map(rows.map((row) => [profileOf.get(row.profile_id)!, row.value]));
  }

  async function create(body: object): Promise<{ id: string; traits: string[] }> {
    const res = await call('POST', '/v1/models', body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  async function train(modelId: string, now = NOW) {
    const result = await runModel(t.db, t.workspace.id, modelId, { now });
    expect(result?.run.error ?? null).toBeNull();
    expect(result?.outcome).toBe('succeeded');
    return result!.run;
  }

  async function members(segmentKey: string): Promise<number[]> {
    while ((await drainSegmentQueue(t.db, { now: new Date(NOW) })) > 0);
    const res = await call('GET', `/v1/segments/${segmentKey}/members?limit=500`);
    expect(res.statusCode, res.body).toBe(200);
    return (res.json().items as { profileId: string }[]).map((m) => profileOf.get(m.profileId)!).sort((a, b) => a - b);
  }

  it('RFM: groups as traits that a segment reads, re-evaluated when they change', async () => {
    const segment = await call('POST', '/v1/segments', { key: 'champions', name: 'Champions', kind: 'realtime', text: 'trait.rfm_group = "champions"' });
    expect(segment.statusCode, segment.body).toBe(201);
    const model = await create({ key: 'rfm', name: 'RFM', config: { kind: 'rfm' } });
    expect(model.traits).toContain('rfm_group');
    // Creating the model scheduled its first run for the worker.
    const { rows: jobs } = await t.db.query(`select 1 from graphile_worker.jobs where task_identifier = 'models.run' and key = $1`, [`models.run:${model.id}`]);
    expect(jobs).toHaveLength(1);
    const run = await train(model.id);
    expect(run.profilesScored).toBe(USERS);
    const groups = await traits('rfm_group');
    const byKind = new Map<string, Set<unknown>>();
    for (const [i, group] of groups) byKind.set(kindOf(i), (byKind.get(kindOf(i)) ?? new Set()).add(group));
    // Loyal customers bought 25 times, the last 1–3 days ago: the most recent and most frequent fifth.
    expect([...byKind.get('loyal')!]).toEqual(['champions']);
    // Lapsed: four orders (F = 3), none for 200 days (R = 1). New: one order 10 days ago, more
    // recent than only the lapsed and fading customers (2 fifths below: R = 3), F = 1.
    expect([...byKind.get('lapsed')!]).toEqual(['at_risk']);
    expect([...byKind.get('new')!]).toEqual(['about_to_sleep']);
    expect([...byKind.get('reactivated')!]).toEqual(['potential_loyalists']);
    expect([...byKind.get('fading')!].every((g) => g === 'at_risk' || g === 'hibernating')).toBe(true);
    expect((await traits('rfm_f')).get(0)).toBe(5);
    expect((await traits('rfm_score')).get(0)).toMatch(/^[45]5[1-5]$/);
    const champions = [...groups].filter(([, g]) => g === 'champions').map(([i]) => i).sort((a, b) => a - b);
    expect(champions).toEqual(Array.from({ length: USERS / 5 }, (_, k) => k * 5));
    expect(await members('champions')).toEqual(champions);
    // A second run with nothing new changes nothing.
    const again = await train(model.id);
    expect(again.profilesChanged).toBe(0);
    const res = await call('GET', '/v1/models/rfm/runs');
    expect(res.json().items).toHaveLength(2);
    expect(res.json().items[0].metrics.groups.champions).toBe(champions.length);
  });

  it('lifecycle: stages as traits, each change a Lifecycle Stage Changed event in the timeline', async () => {
    const model = await create({ key: 'lifecycle', name: 'Lifecycle', config: { kind: 'lifecycle', newDays: 30, atRiskDays: 60, churnedDays: 180, reactivatedDays: 30 } });
    await train(model.id);
    const stages = await traits('lifecycle_stage');
    const expected = { loyal: 'active', lapsed: 'churned', new: 'new', reactivated: 'reactivated' } as Record<string, string>;
    for (const [i, stage] of stages) if (expected[kindOf(i)]) expect(stage, `u${i}`).toBe(expected[kindOf(i)]);
    // 100 days later nobody bought: the new customers are at risk, the loyal ones too.
    await train(model.id, NOW + 100 * DAY);
    const later = await traits('lifecycle_stage');
    expect(later.get(2)).toBe('at_risk');
    expect(later.get(1)).toBe('churned');
    const { rows } = await t.db.query<{ properties: { from: string | null; to: string; model: string } }>(
      `select e.properties from events e join profile_identifiers i on i.workspace_id = e.workspace_id and i.profile_id = e.profile_id
        where e.workspace_id = $1 and e.event = 'Lifecycle Stage Changed' and i.value = 'u2' order by e.timestamp, e.seq`,
      [t.workspace.id],
    );
    expect(rows.map((r) => r.properties)).toEqual([
      { from: null, to: 'new', model: 'lifecycle' },
      { from: 'new', to: 'at_risk', model: 'lifecycle' },
    ]);
    // The lapsed customer stayed churned: no event for it the second time.
    const { rows: lapsed } = await t.db.query(
      `select 1 from events e join profile_identifiers i on i.workspace_id = e.workspace_id and i.profile_id = e.profile_id
        where e.workspace_id = $1 and e.event = 'Lifecycle Stage Changed' and i.value = 'u1'`,
      [t.workspace.id],
    );
    expect(lapsed).toHaveLength(1);
  });

  it('CLV: BG/NBD and Gamma-Gamma parameters, fit quality and a weekly holdout series through the API', async () => {
    await create({ key: 'clv', name: 'CLV', config: { kind: 'clv', horizonDays: 365, annualDiscountRate: 0.1, holdoutDays: 56 } });
    const { id } = (await call('GET', '/v1/models/clv')).json();
    await train(id);
    const res = await call('GET', '/v1/models/clv');
    const run = res.json().lastRun;
    expect(run.status).toBe('succeeded');
    for (const key of ['r', 'alpha', 'a', 'b']) expect(run.parameters.bgnbd[key]).toBeGreaterThan(0);
    for (const key of ['p', 'q', 'gamma']) expect(run.parameters.gammaGamma[key]).toBeGreaterThan(0);
    expect(Number.isFinite(run.metrics.bgnbdLogLikelihood)).toBe(true);
    expect(run.diagnostics.holdoutWeekly).toHaveLength(8);
    // The loyal customers bought every 12 days through the holdout: 40 customers × ~4.7 orders.
    const actual = run.diagnostics.holdoutWeekly.reduce((s: number, w: { actual: number }) => s + w.actual, 0);
    expect(actual).toBe(run.metrics.holdout.actual);
    expect(actual).toBeGreaterThan(150);
    const clv = await traits('clv_value');
    const alive = await traits('clv_p_alive');
    const mean = (kind: string) => {
      const values = [...clv].filter(([i]) => kindOf(i) === kind).map(([, v]) => Number(v));
      return values.reduce((s, v) => s + v, 0) / values.length;
    };
    expect(mean('loyal')).toBeGreaterThan(5 * mean('lapsed'));
    expect(Number(alive.get(0))).toBeGreaterThan(0.9);
    expect(Number(alive.get(1))).toBeLessThan(0.5);
  });

  it('churn propensity: trained on behaviour before the cut, fading customers score above loyal ones', async () => {
    const model = await create({ key: 'churn', name: 'Churn', config: { kind: 'churn', horizonDays: 30, lookbackDays: 90 } });
    const run = await train(model.id);
    expect(run.metrics?.profiles).toBeGreaterThan(60);
    expect((run.diagnostics?.topFeatures as unknown[]).length).toBeGreaterThan(0);
    expect(run.parameters?.features).toContain('events_30d:App Opened');
    const scores = await traits('churn_score');
    const mean = (kind: string) => {
      const values = [...scores].filter(([i]) => kindOf(i) === kind).map(([, v]) => Number(v));
      return values.reduce((s, v) => s + v, 0) / values.length;
    };
    // Scored today: loyal customers are active; the new and reactivated ones too; fading ones stopped 40–60 days ago.
    expect(mean('loyal')).toBeLessThan(0.3);
    expect((await traits('churn_decile')).get(0)).toBeGreaterThanOrEqual(1);
  });

  it('purchase propensity: loyal customers, who buy every 12 days, score above lapsed and fading ones', async () => {
    const model = await create({ key: 'buy', name: 'Purchase', config: { kind: 'purchase', horizonDays: 30, lookbackDays: 90 } });
    const run = await train(model.id);
    expect(run.metrics).toMatchObject({ converged: true });
    expect(run.parameters?.label).toMatch(/purchase/);
    const scores = await traits('buy_score');
    const loyal = [...scores].filter(([i]) => kindOf(i) === 'loyal').map(([, v]) => Number(v));
    const fading = [...scores].filter(([i]) => kindOf(i) === 'fading').map(([, v]) => Number(v));
    expect(loyal.length).toBe(USERS / 5);
    expect(Math.min(...loyal)).toBeGreaterThan(fading.length ? Math.max(...fading) : 0);
  });

  it('lookalike: ranks non-seed profiles like the seed segment and creates the audience segment', async () => {
    const seed = await call('POST', '/v1/segments', { key: 'vip', name: 'VIP', kind: 'realtime', text: 'trait.vip = true' });
    expect(seed.statusCode, seed.body).toBe(201);
    const model = await create({ key: 'vip_like', name: 'Like VIPs', config: { kind: 'lookalike', seedSegment: 'vip', size: { count: 20 } } });
    const run = await train(model.id);
    expect(run.metrics).toMatchObject({ seeds: 8, audience: 20 });
    const audience = await members('vip_like');
    expect(audience).toHaveLength(20);
    expect(audience.every((i) => i % 25 !== 0)).toBe(true);
    expect(audience.filter((i) => kindOf(i) === 'loyal').length).toBeGreaterThanOrEqual(18);
    expect((await traits('vip_like_rank')).size).toBe(20);
  });

  it('refuses bad definitions with the field at fault, and queues runs on request', async () => {
    const bad = await call('POST', '/v1/models', { key: 'lc2', name: 'x', config: { kind: 'lifecycle', atRiskDays: 90, churnedDays: 30 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_config', field: 'config.churnedDays' });
    const unknownKind = await call('POST', '/v1/models', { key: 'x1', name: 'x', config: { kind: 'magic' } });
    expect(unknownKind.statusCode).toBe(400);
    expect(unknownKind.json().field).toMatch(/^config/);
    const badKey = await call('POST', '/v1/models', { key: 'Bad Key', name: 'x', config: { kind: 'rfm' } });
    expect(badKey.statusCode).toBe(400);
    expect(badKey.json().field).toBe('key');
    expect((await call('POST', '/v1/models', { key: 'rfm', name: 'again', config: { kind: 'rfm' } })).statusCode).toBe(409);
    const noSeed = await call('POST', '/v1/models', { key: 'll', name: 'x', config: { kind: 'lookalike', seedSegment: 'nope', size: { percent: 5 } } });
    expect(noSeed.json()).toMatchObject({ error: 'invalid_config', field: 'config.seedSegment' });
    expect((await call('GET', '/v1/models/nope')).statusCode).toBe(404);
    const queued = await call('POST', '/v1/models/rfm/runs');
    expect(queued.statusCode).toBe(202);
    expect(queued.json()).toMatchObject({ status: 'queued', trigger: 'api' });
    const one = await call('GET', `/v1/models/rfm/runs/${queued.json().id}`);
    expect(one.json().status).toBe('queued');
    const list = await call('GET', '/v1/models');
    expect(list.json().items.map((m: { key: string }) => m.key)).toEqual(['buy', 'churn', 'clv', 'lifecycle', 'rfm', 'vip_like']);
    expect((await call('GET', '/v1/models', undefined)).statusCode).toBe(200);
    const anonymous = await t.app.inject({ method: 'GET', url: '/v1/models' });
    expect(anonymous.statusCode).toBe(401);
  });

  it('archiving removes the traits and the segments follow', async () => {
    const res = await call('DELETE', '/v1/models/rfm');
    expect(res.statusCode, res.body).toBe(200);
    expect((await traits('rfm_group')).size).toBe(0);
    expect(await members('champions')).toEqual([]);
  });

  it("lookalike on traits beside behaviour: the seed's tier finds the non-seed profiles who share it", async () => {
    // All loyal customers behave alike; the VIP seed (i % 25 = 0) and eight other loyal ones
    // (i % 25 = 5) are "gold", the rest "silver". Behaviour alone cannot tell the eight apart.
    const loyal = Array.from({ length: USERS }, (_, i) => i).filter((i) => kindOf(i) === 'loyal');
    const gold = (i: number) => i % 25 === 0 || i % 25 === 5;
    await send(
      t,
      t.writeKey,
      loyal.map((i) => ({ type: 'identify', userId: `u${i}`, messageId: `tier-${i}`, timestamp: iso(NOW - 200 * DAY), traits: { tier: gold(i) ? 'gold' : 'silver' } })),
    );
    await drain(t);
    const expected = loyal.filter((i) => i % 25 === 5);
    expect(expected).toHaveLength(8);
    const model = await create({ key: 'gold_like', name: 'Like VIPs by tier', config: { kind: 'lookalike', seedSegment: 'vip', size: { count: 8 }, traits: ['tier'] } });
    const run = await train(model.id);
    expect(run.parameters).toMatchObject({ traits: ['tier'] });
    expect((run.parameters as { features: string[] }).features).toEqual(expect.arrayContaining(['trait:tier=gold', 'trait:tier=silver', 'trait:tier:missing']));
    expect(await members('gold_like')).toEqual(expected);
    const bad = await call('POST', '/v1/models', { key: 'bad_like', name: 'x', config: { kind: 'lookalike', seedSegment: 'vip', size: { count: 8 }, traits: ['tier', 'tier'] } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toMatch(/^config/);
  });
});
