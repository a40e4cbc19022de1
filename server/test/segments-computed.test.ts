import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeProfileTraits, applyEventTraits, type TraitSet } from '../src/identity/traits.ts';
import type { LightMyRequestResponse } from 'fastify';
import type { Condition, EventMatch } from '../src/segments/ast.ts';
import { computeComputedTrait, loadMatchingEvents, eventNeedOf } from '../src/segments/computed/compute.ts';
import type { ComputedTraitDefinition } from '../src/segments/computed/definition.ts';
import { computedTraitNeeds, refreshComputedTraits } from '../src/segments/computed/realtime.ts';
import { getComputedTrait, loadActiveComputedTraits, sameJson } from '../src/segments/computed/store.ts';
import { evaluateSegment } from '../src/segments/evaluate.ts';
import type { ProfileSnapshot } from '../src/segments/snapshot.ts';
import { compileSegmentQuery } from '../src/segments/sql/compile.ts';
import { prepareTransitionStorage } from '../src/segments/transitions.ts';
import { withTransaction } from '../src/storage/database.ts';
import { drain, profileUrl, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-03-01T00:00:00Z');
const at = (iso: string) => `${iso}T12:00:00Z`;

const order = (userId: string, id: string, day: string, properties: Record<string, unknown>) => ({
  type: 'track',
  event: 'Order Completed',
  userId,
  messageId: id,
  timestamp: at(day),
  properties,
});
const viewed = (userId: string, id: string, day: string, category: string) => ({
  type: 'track',
  event: 'Product Viewed',
  userId,
  messageId: id,
  timestamp: at(day),
  properties: { category },
});
const orders: EventMatch = { type: 'track', name: 'Order Completed', filters: [] };

/**
 * Computed traits on real PostgreSQL: three customers with small histories (Ann: three orders and
 * some browsing, Bob: one order whose revenue is a numeric string, Cai: only a page view), every
 * kind computed over them, values in the profile API and in segments, change events only on
 * change, removal of absent values, and the API's validation.
 */
describe('computed traits', () => {
  let t: TestApp;
  let call: (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => Promise<LightMyRequestResponse>;
  const ids: Record<'ann' | 'bob' | 'cai', string> = { ann: '', bob: '', cai: '' };
  const ws = () => t.workspace.id;

  beforeAll(async () => {
    t = await startTestApp({ now: () => new Date(NOW) });
    const key = await serverKey(t);
    call = (method, url, payload) =>
      t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
    await send(t, t.writeKey, [
      { type: 'identify', userId: 'ann', traits: { city: '上海' }, messageId: 'i-ann', timestamp: at('2026-01-01') },
      order('ann', 'o1', '2026-01-10', { revenue: 100, coupon: 'NEW' }),
      order('ann', 'o2', '2026-02-20', { revenue: 250 }),
      order('ann', 'o3', '2026-02-25', { revenue: 50, coupon: 'SPRING' }),
      viewed('ann', 'v1', '2026-02-01', 'shoes'),
      viewed('ann', 'v2', '2026-02-02', 'bags'),
      viewed('ann', 'v3', '2026-02-03', 'shoes'),
      viewed('ann', 'v4', '2026-02-04', 'bags'),
      order('bob', 'o4', '2026-02-27', { revenue: '12.5' }),
      { type: 'page', userId: 'cai', name: 'Home', messageId: 'p1', timestamp: at('2026-02-28') },
    ]);
    await drain(t);
    const { rows } = await t.db.query<{ value: string; profile_id: string }>(
      `select value, profile_id from profile_identifiers where workspace_id = $1 and type = 'user_id'`,
      [ws()],
    );
    for (const row of rows) ids[row.value as keyof typeof ids] = row.profile_id;
  });
  afterAll(async () => t?.close());

  async function define(key: string, definition: ComputedTraitDefinition): Promise<string> {
    const res = await call('POST', '/v1/computed-traits', { key, name: key, definition });
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json().id as string;
    const result = await computeComputedTrait(t.db, ws(), id, { now: NOW, batchSize: 2 });
    expect(result.outcome).toBe('completed');
    return id;
  }

  async function valuesOf(key: string): Promise<Record<string, unknown>> {
    const { rows } = await t.db.query<{ profile_id: string; value: unknown; source_kind: string; source_name: string }>(
      'select profile_id, value, source_kind, source_name from profile_traits where workspace_id = $1 and key = $2',
      [ws(), key],
    );
    const byName: Record<string, unknown> = {};
    for (const row of rows) {
      expect(row).toMatchObject({ source_kind: 'computed', source_name: key });
      const name = Object.entries(ids).find(([, id]) => id === row.profile_id)![0];
      byName[name] = row.value;
    }
    return byName;
  }

  async function changeEvents(profileId: string, key: string) {
    const { rows } = await t.db.query<{ properties: { trait: string; previous: unknown; value: unknown; cause: string }; timestamp: Date }>(
      `select properties, timestamp from events
        where workspace_id = $1 and profile_id = $2 and event = 'Computed Trait Changed' and properties->>'trait' = $3 order by seq`,
      [ws(), profileId, key],
    );
    return rows.map((row) => row.properties);
  }

  async function snapshotsOf(profileIds: string[], now: number): Promise<ProfileSnapshot[]> {
    const traits = await loadActiveComputedTraits(t.db, ws());
    const needs = traits.map((trait) => eventNeedOf(trait.definition));
    const events = await loadMatchingEvents(t.db, ws(), profileIds, needs, now);
    const { rows } = await t.db.query<{ profile_id: string; key: string; value: unknown }>(
      'select profile_id, key, value from profile_traits where workspace_id = $1 and profile_id = any($2::uuid[])',
      [ws(), profileIds],
    );
    return profileIds.map((profileId) => ({
      profileId,
      traits: Object.fromEntries(rows.filter((row) => row.profile_id === profileId).map((row) => [row.key, row.value])),
      identifierTypes: new Set(['user_id']),
      consents: new Map(),
      memberships: new Set(),
      events: events.get(profileId) ?? [],
    }));
  }

  async function refresh(profileIds: string[], now: number, cause: 'event' | 'expiry' = 'event') {
    await prepareTransitionStorage(t.db, new Date(now));
    const snapshots = await snapshotsOf(profileIds, now);
    return withTransaction(t.db, (client) => refreshComputedTraits(client, ws(), snapshots, now, { cause }));
  }

  describe('every kind over a small history', () => {
    it('counts events in a window with a filter (no events: 0)', async () => {
      await define('big_orders_30d', {
        kind: 'count',
        match: { ...orders, filters: [{ property: 'revenue', op: 'gte', value: 100 }] },
        window: { kind: 'last', duration: { amount: 30, unit: 'days' } },
      });
      // Ann's 100 was 50 days ago; her 250 is inside; Bob's '12.5' is too small; Cai has none.
      expect(await valuesOf('big_orders_30d')).toEqual({ ann: 1, bob: 0, cai: 0 });
      await define('orders_total', { kind: 'count', match: orders });
      expect(await valuesOf('orders_total')).toEqual({ ann: 3, bob: 1, cai: 0 });
    });

    it('sums, averages, and takes the minimum and maximum of a numeric property (numeric strings count)', async () => {
      await define('revenue_sum', { kind: 'sum', property: 'revenue', match: orders });
      await define('revenue_avg', { kind: 'avg', property: 'revenue', match: orders });
      await define('revenue_min', { kind: 'min', property: 'revenue', match: orders });
      await define('revenue_max', { kind: 'max', property: 'revenue', match: orders });
      expect(await valuesOf('revenue_sum')).toEqual({ ann: 400, bob: 12.5, cai: 0 });
      // avg/min/max of no events are absent: no row for Cai.
      expect(await valuesOf('revenue_avg')).toEqual({ ann: 400 / 3, bob: 12.5 });
      expect(await valuesOf('revenue_min')).toEqual({ ann: 50, bob: 12.5 });
      expect(await valuesOf('revenue_max')).toEqual({ ann: 250, bob: 12.5 });
    });

    it('finds the most frequent value, ties going to the most recent', async () => {
      await define('favourite_category', { kind: 'most_frequent', property: 'category', match: { type: 'track', name: 'Product Viewed', filters: [] } });
      // shoes ×2 and bags ×2: bags was seen last.
      expect(await valuesOf('favourite_category')).toEqual({ ann: 'bags' });
    });

    it('takes the first and last value', async () => {
      await define('first_coupon', { kind: 'first_value', property: 'coupon', match: orders });
      await define('last_revenue', { kind: 'last_value', property: 'revenue', match: orders });
      expect(await valuesOf('first_coupon')).toEqual({ ann: 'NEW' });
      expect(await valuesOf('last_revenue')).toEqual({ ann: 50, bob: '12.5' });
    });

    it('lists and counts unique values', async () => {
      const views: EventMatch = { type: 'track', name: 'Product Viewed', filters: [] };
      await define('categories', { kind: 'unique_list', property: 'category', match: views });
      await define('category_count', { kind: 'unique_count', property: 'category', match: views });
      expect(await valuesOf('categories')).toEqual({ ann: ['shoes', 'bags'], bob: [], cai: [] });
      expect(await valuesOf('category_count')).toEqual({ ann: 2, bob: 0, cai: 0 });
    });

    it('stores the time of the last event, which segments test with within last', async () => {
      await define('last_order_at', { kind: 'last_event_time', match: orders });
      expect(await valuesOf('last_order_at')).toEqual({ ann: '2026-02-25T12:00:00.000Z', bob: '2026-02-27T12:00:00.000Z' });
    });
  });

  it('shows the values in the profile, with their source and history', async () => {
    const res = await call('GET', profileUrl('user_id:ann', '?verbose=true'));
    expect(res.statusCode).toBe(200);
    const traits = res.json().traits;
    expect(traits.orders_total).toMatchObject({ value: 3, source: { kind: 'computed', name: 'orders_total' } });
    expect(traits.orders_total.history).toEqual([expect.objectContaining({ previousValue: null, value: 3, reason: 'computed' })]);
    expect(traits.city.value).toBe('上海');
    const plain = await call('GET', profileUrl('user_id:bob'));
    expect(plain.json().traits).toMatchObject({ orders_total: 1, revenue_sum: 12.5 });
  });

  it('is read by segments as trait.<key>, by both evaluators', async () => {
    const condition: Condition = { kind: 'trait', trait: 'orders_total', op: 'gte', value: 3 };
    const query = compileSegmentQuery(condition, { workspaceId: ws(), now: new Date(NOW), segmentIds: new Map() });
    const { rows } = await t.db.query<{ profile_id: string }>(query.text, query.values);
    expect(rows.map((row) => row.profile_id)).toEqual([ids.ann]);
    const snapshots = await snapshotsOf([ids.ann, ids.bob, ids.cai], NOW);
    expect(snapshots.map((snapshot) => evaluateSegment(condition, snapshot, NOW).member)).toEqual([true, false, false]);
  });

  it('writes a change (history and one Computed Trait Changed event) only when the value changes', async () => {
    const before = await changeEvents(ids.bob, 'orders_total');
    expect(before).toEqual([expect.objectContaining({ trait: 'orders_total', previous: null, value: 1, cause: 'compute' })]);

    await send(t, t.writeKey, [order('bob', 'o5', '2026-02-28', { revenue: 30 })]);
    await drain(t);
    const first = await refresh([ids.bob], NOW + 1000);
    // The returned snapshot carries the new value, so a segment on it sees it in the same pass.
    expect(first.snapshots[0]!.traits).toMatchObject({ orders_total: 2, revenue_sum: 42.5, revenue_max: 30 });
    const second = await refresh([ids.bob], NOW + 2000);
    expect(second.snapshots[0]!.traits.orders_total).toBe(2);

    const after = await changeEvents(ids.bob, 'orders_total');
    expect(after).toHaveLength(2);
    expect(after[1]).toMatchObject({ trait: 'orders_total', previous: 1, value: 2, cause: 'event' });
    const { rows: history } = await t.db.query(
      `select previous_value, value, reason from profile_trait_history where workspace_id = $1 and profile_id = $2 and key = 'orders_total' order by id`,
      [ws(), ids.bob],
    );
    expect(history).toEqual([
      { previous_value: null, value: 1, reason: 'computed' },
      { previous_value: 1, value: 2, reason: 'computed' },
    ]);
    // Unchanged traits wrote nothing: Bob's first coupon is still absent, his category count still 0.
    expect(await changeEvents(ids.bob, 'category_count')).toHaveLength(1);
    expect(await changeEvents(ids.bob, 'first_coupon')).toHaveLength(0);
  });

  it('removes a value that became absent, recording the removal, and schedules the re-check that finds it', async () => {
    const id = await define('recent_coupon', {
      kind: 'last_value',
      property: 'coupon',
      match: { ...orders, filters: [{ property: 'coupon', op: 'exists' }] },
      window: { kind: 'last', duration: { amount: 7, unit: 'days' } },
    });
    expect(await valuesOf('recent_coupon')).toEqual({ ann: 'SPRING' });
    const { rows: rechecks } = await t.db.query<{ due_at: Date }>('select due_at from segment_rechecks where workspace_id = $1 and profile_id = $2', [
      ws(),
      ids.ann,
    ]);
    // The coupon's order leaves the 7-day window at its time + 7 days (or earlier, for another trait).
    expect(rechecks[0]!.due_at.getTime()).toBeLessThanOrEqual(Date.parse(at('2026-02-25')) + 7 * DAY);

    const later = Date.parse(at('2026-02-25')) + 7 * DAY;
    const result = await refresh([ids.ann], later, 'expiry');
    expect(result.snapshots[0]!.traits).not.toHaveProperty('recent_coupon');
    expect(await valuesOf('recent_coupon')).toEqual({});
    expect((await changeEvents(ids.ann, 'recent_coupon')).at(-1)).toMatchObject({ previous: 'SPRING', value: null, cause: 'expiry' });
    const { rows: history } = await t.db.query(
      `select previous_value, value from profile_trait_history where workspace_id = $1 and profile_id = $2 and key = 'recent_coupon' order by id`,
      [ws(), ids.ann],
    );
    expect(history.at(-1)).toEqual({ previous_value: 'SPRING', value: null });
    // Absent again: nothing more is written.
    await refresh([ids.ann], later + DAY, 'expiry');
    expect(await changeEvents(ids.ann, 'recent_coupon')).toHaveLength(2);
    expect((await getComputedTrait(t.db, ws(), 'recent_coupon')).id).toBe(id);
  });

  it('a full computation over several profiles writes only changes: a second run writes nothing', async () => {
    const id = (await getComputedTrait(t.db, ws(), 'revenue_sum')).id;
    const { rows: before } = await t.db.query<{ n: number }>(`select count(*)::int as n from events where workspace_id = $1 and event = 'Computed Trait Changed'`, [
      ws(),
    ]);
    const again = await computeComputedTrait(t.db, ws(), id, { now: NOW + 3000, batchSize: 1 });
    expect(again).toMatchObject({ outcome: 'completed', profiles: 3, changed: 0 });
    const { rows: after } = await t.db.query<{ n: number }>(`select count(*)::int as n from events where workspace_id = $1 and event = 'Computed Trait Changed'`, [
      ws(),
    ]);
    expect(after[0]!.n).toBe(before[0]!.n);
    const trait = await getComputedTrait(t.db, ws(), 'revenue_sum');
    expect(trait).toMatchObject({ state: 'ready', version: 1, lastError: null });
    expect(trait.computedAt?.getTime()).toBe(NOW + 3000);
  });

  it('a full computation re-reads profiles that got events after its snapshot was taken', async () => {
    const giftCards: EventMatch = { type: 'track', name: 'Gift Card Bought', filters: [] };
    await send(t, t.writeKey, [{ type: 'track', event: 'Gift Card Bought', userId: 'ann', messageId: 'g0', timestamp: at('2026-02-10') }]);
    await drain(t);
    const res = await call('POST', '/v1/computed-traits', { key: 'gift_cards', name: 'Gift cards', definition: { kind: 'count', match: giftCards } });
    const before = { ann: 1, bob: 0, cai: 0 };
    const inIdOrder = (Object.keys(ids) as Array<keyof typeof ids>).sort((a, b) => (ids[a] < ids[b] ? -1 : 1));
    let batches = 0;
    await computeComputedTrait(t.db, ws(), res.json().id, {
      now: NOW,
      batchSize: 1,
      onProgress: async () => {
        if (++batches > 1) return;
        // After the first profile's batch: everyone buys a gift card.
        await send(
          t,
          t.writeKey,
          inIdOrder.map((name, i) => ({ type: 'track', event: 'Gift Card Bought', userId: name, messageId: `g${i + 1}`, timestamp: at('2026-02-28') })),
        );
        await drain(t);
      },
    });
    const values = await valuesOf('gift_cards');
    const [first, ...rest] = inIdOrder;
    // The first was written before the purchases arrived (the real-time refresh takes it from there).
    expect(values[first!]).toBe(before[first!]);
    for (const name of rest) expect(values[name]).toBe(before[name] + 1);
  });

  it('queues the changed profiles for segment evaluation after a full computation', async () => {
    await t.db.query('delete from segment_queue where workspace_id = $1', [ws()]);
    await define('bag_views', { kind: 'count', match: { type: 'track', name: 'Product Viewed', filters: [{ property: 'category', op: 'eq', value: 'bags' }] } });
    const { rows } = await t.db.query<{ profile_id: string }>('select profile_id from segment_queue where workspace_id = $1 order by profile_id', [ws()]);
    // Every profile went from absent to a count (Ann 2, the others 0).
    expect(rows.map((row) => row.profile_id)).toEqual([ids.ann, ids.bob, ids.cai].sort());
  });

  it('an edit bumps the version and recomputes; only real changes are written', async () => {
    const res = await call('PATCH', '/v1/computed-traits/orders_total', {
      definition: { kind: 'count', match: orders, window: { kind: 'last', duration: { amount: 30, unit: 'days' } } },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ version: 2, state: 'computing' });
    await computeComputedTrait(t.db, ws(), res.json().id, { now: NOW });
    // Ann's January order left; Bob's two and Cai's none are unchanged.
    expect(await valuesOf('orders_total')).toEqual({ ann: 2, bob: 2, cai: 0 });
    expect((await changeEvents(ids.ann, 'orders_total')).at(-1)).toMatchObject({ previous: 3, value: 2, cause: 'compute' });
    expect(await changeEvents(ids.bob, 'orders_total')).toHaveLength(2);
    expect(await changeEvents(ids.cai, 'orders_total')).toHaveLength(1);
    expect((await call('GET', '/v1/computed-traits/orders_total')).json()).toMatchObject({ version: 2, state: 'ready' });
    // A name-only edit keeps the version and computes nothing.
    const renamed = await call('PATCH', '/v1/computed-traits/orders_total', { name: 'Orders (30 days)' });
    expect(renamed.json()).toMatchObject({ version: 2, state: 'ready', name: 'Orders (30 days)' });
  });

  it('queues the full computation as a worker job on create', async () => {
    const res = await call('POST', '/v1/computed-traits', { key: 'first_order_at', name: 'First order', definition: { kind: 'first_event_time', match: orders } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ key: 'first_order_at', version: 1, state: 'computing', status: 'active' });
    const { rows } = await t.db.query<{ payload: unknown }>(
      `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
        where k.identifier = 'computed-traits.compute'`,
    );
    expect(rows.map((row) => row.payload)).toContainEqual({ workspaceId: ws(), computedTraitId: res.json().id });
  });

  it('keeps computed values from identity: an event trait with the same key does not overwrite it', async () => {
    await send(t, t.writeKey, [{ type: 'identify', userId: 'ann', traits: { revenue_sum: 1, plan: 'gold' }, messageId: 'i-ann-2', timestamp: at('2026-02-26') }]);
    await drain(t);
    const { rows } = await t.db.query<{ key: string; value: unknown; source_kind: string }>(
      `select key, value, source_kind from profile_traits where workspace_id = $1 and profile_id = $2 and key in ('revenue_sum', 'plan') order by key`,
      [ws(), ids.ann],
    );
    expect(rows).toEqual([
      { key: 'plan', value: 'gold', source_kind: 'web' },
      { key: 'revenue_sum', value: 400, source_kind: 'computed' },
    ]);
  });

  it('trait strategies: events never replace a computed value, merges keep the survivor\'s and never take the absorbed one\'s', () => {
    const computed = (value: unknown) => ({ value, source: { kind: 'computed', name: 'k' }, eventId: 'computed-1', at: new Date(NOW) });
    const event = (value: unknown) => ({ value, source: { kind: 'web', name: 'Website' }, eventId: 'e-9', at: new Date(NOW + DAY) });
    const update = applyEventTraits({ k: computed(3) }, { traits: { k: 9 }, source: { kind: 'web', name: 'Website' }, eventId: 'e-9', at: new Date(NOW + DAY) }, {});
    expect(update.traits.k!.value).toBe(3);
    expect(update.changes).toEqual([]);
    expect(update.rejected).toEqual([{ trait: 'k', value: 9, message: expect.stringContaining('computed') }]);
    const survivor: TraitSet = { k: computed(3) };
    expect(mergeProfileTraits(survivor, { k: computed(5) }, {}).traits.k!.value).toBe(3);
    expect(mergeProfileTraits({ other: event(1) }, { k: computed(5) }, {}).traits).not.toHaveProperty('k');
    expect(mergeProfileTraits({ k: computed(3) }, { k: event(7) }, {}).traits.k!.value).toBe(3);
  });

  it('previews a definition on given profiles without writing', async () => {
    const res = await call('POST', '/v1/computed-traits/preview', {
      definition: { kind: 'sum', property: 'revenue', match: orders, window: { kind: 'last', duration: { amount: 30, unit: 'days' } } },
      profileIds: [ids.ann, ids.cai],
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      items: [
        { profileId: ids.ann, value: 300, recheckAt: new Date(Date.parse(at('2026-02-20')) + 30 * DAY).toISOString() },
        { profileId: ids.cai, value: 0, recheckAt: null },
      ],
      withValue: 2,
    });
    const sample = await call('POST', '/v1/computed-traits/preview', { definition: { kind: 'count', match: orders }, sampleSize: 10 });
    expect(sample.json().items.map((item: { profileId: string }) => item.profileId).sort()).toEqual([ids.ann, ids.bob, ids.cai].sort());
  });

  it('lists, reads, and archives (refused while a segment reads the trait); archiving removes the values', async () => {
    const list = await call('GET', '/v1/computed-traits');
    expect(list.json().items.map((item: { key: string }) => item.key)).toContain('revenue_sum');
    await t.db.query(
      `insert into segments (workspace_id, key, name, kind, definition) values ($1, 'big_spenders', 'Big spenders', 'realtime', $2)`,
      [ws(), JSON.stringify({ kind: 'trait', trait: 'revenue_max', op: 'gt', value: 200 })],
    );
    const refused = await call('DELETE', '/v1/computed-traits/revenue_max');
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ error: 'computed_trait_in_use', field: 'key' });
    expect(refused.json().message).toContain('big_spenders');

    const archived = await call('DELETE', '/v1/computed-traits/revenue_min');
    expect(archived.statusCode, archived.body).toBe(200);
    expect(archived.json()).toMatchObject({ trait: { status: 'archived' }, removedValues: 2 });
    expect(await valuesOf('revenue_min')).toEqual({});
    expect((await call('GET', '/v1/computed-traits')).json().items.map((item: { key: string }) => item.key)).not.toContain('revenue_min');
    expect((await call('GET', '/v1/computed-traits?status=archived')).json().items).toHaveLength(1);
    // Reactivating queues a recomputation.
    const back = await call('PATCH', '/v1/computed-traits/revenue_min', { status: 'active' });
    expect(back.json()).toMatchObject({ status: 'active', state: 'computing', version: 1 });
  });

  describe('validation', () => {
    const create = (body: object) => call('POST', '/v1/computed-traits', body);
    const valid = { key: 'k1', name: 'K', definition: { kind: 'count', match: orders } };

    it.each([
      [{ ...valid, key: 'a.b' }, 'key'],
      [{ ...valid, key: 'say "hi"' }, 'key'],
      [{ ...valid, definition: { kind: 'median', property: 'revenue', match: orders } }, 'definition.kind'],
      [{ ...valid, definition: { kind: 'sum', match: orders } }, 'definition.property'],
      [{ ...valid, definition: { kind: 'count' } }, 'definition.match'],
      [{ ...valid, definition: { kind: 'count', match: orders, window: { kind: 'last', duration: { amount: 0, unit: 'days' } } } }, 'definition.window.duration.amount'],
      [{ ...valid, definition: { kind: 'count', match: { ...orders, filters: [{ property: 'revenue', op: 'gt', value: 'ten' }] } } }, 'definition.match.filters.0.value'],
      [{ ...valid, extra: true }, 'extra'],
    ])('refuses %j naming %s', async (body, field) => {
      const res = await create(body);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_request', field });
      expect(res.json().message.length).toBeGreaterThan(10);
    });

    it('refuses a pattern JavaScript cannot compile', async () => {
      const res = await create({ ...valid, definition: { kind: 'count', match: { ...orders, filters: [{ property: 'sku', op: 'matches', pattern: '(' }] } } });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_definition', field: 'definition' });
    });

    it('refuses a key events already set (409 naming it) and a key already taken', async () => {
      const taken = await create({ ...valid, key: 'city' });
      expect(taken.statusCode).toBe(409);
      expect(taken.json()).toMatchObject({ error: 'trait_key_in_use', field: 'key' });
      expect(taken.json().message).toContain('"city"');
      const duplicate = await create({ ...valid, key: 'orders_total' });
      expect(duplicate.statusCode).toBe(409);
      expect(duplicate.json()).toMatchObject({ error: 'computed_trait_exists', field: 'key' });
    });

    it('answers 404 for an unknown trait and refuses a key change', async () => {
      expect((await call('GET', '/v1/computed-traits/nope')).statusCode).toBe(404);
      const res = await call('PATCH', '/v1/computed-traits/orders_total', { key: 'renamed' });
      expect(res.statusCode).toBe(400);
      expect(res.json().field).toBe('key');
    });

    it('refuses a preview of profiles that do not exist', async () => {
      const res = await call('POST', '/v1/computed-traits/preview', { definition: valid.definition, profileIds: [ids.ann, '00000000-0000-4000-8000-000000000000'] });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'unknown_profile', field: 'profileIds.1' });
    });
  });

  it('documents the API in OpenAPI under computed-traits', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const paths = res.json().paths;
    expect(Object.keys(paths)).toEqual(expect.arrayContaining(['/v1/computed-traits', '/v1/computed-traits/{key}', '/v1/computed-traits/preview']));
    expect(paths['/v1/computed-traits'].post.tags).toEqual(['computed-traits']);
  });

  it('exports what a snapshot loader must include', () => {
    expect(computedTraitNeeds([{ kind: 'count', match: orders }, { kind: 'sum', property: 'revenue', match: { type: 'page', filters: [] } }])).toEqual([
      orders,
      { type: 'page', filters: [] },
    ]);
    expect(sameJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true);
    expect(sameJson([1, 2], [2, 1])).toBe(false);
  });
});
