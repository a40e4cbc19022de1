import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeObservations } from '../src/catalogue/merge.ts';
import { observeEvents } from '../src/catalogue/observe.ts';
import { checkQueuedObservations, drainCatalogueQueue, queueCatalogueObservations } from '../src/catalogue/store.ts';
import { normalizeEvent, type NormalizedEvent } from '../src/ingest/normalize.ts';
import { migrate } from '../src/storage/migrate.ts';
import { startPollingLoop } from '../src/worker/polling-loop.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { createTestDatabase } from './support/db.ts';

function event(raw: Record<string, unknown>, at = '2025-05-01T12:00:00.000Z'): NormalizedEvent {
  const result = normalizeEvent({ timestamp: at, ...raw }, { receivedAt: new Date(at), historical: true });
  if (!result.ok) throw new Error(result.rejection.message);
  return result.event;
}

describe('catalogue merge (pure)', () => {
  it('adds volumes and type counts, widens the time range and sorts rows by key', () => {
    const ws = '11111111-1111-4111-8111-111111111111';
    const early = observeEvents([event({ type: 'track', userId: 'a', event: 'Buy', properties: { price: 1 } }, '2025-01-01T00:00:00.000Z')]);
    const late = observeEvents([
      event({ type: 'track', userId: 'a', event: 'Buy', properties: { price: '2' } }, '2025-02-01T00:00:00.000Z'),
      event({ type: 'track', userId: 'a', event: 'Buy', properties: { price: 3 } }, '2025-01-15T00:00:00.000Z'),
      event({ type: 'identify', userId: 'a', traits: { email: 'a@x' } }, '2025-01-10T00:00:00.000Z'),
    ]);
    const merged = mergeObservations([
      { workspaceId: ws, observations: late },
      { workspaceId: ws, observations: early },
    ]);
    expect(merged.events).toEqual([
      { workspaceId: ws, type: 'identify', name: '', firstSeen: '2025-01-10T00:00:00.000Z', lastSeen: '2025-01-10T00:00:00.000Z', volume: 1 },
      { workspaceId: ws, type: 'track', name: 'Buy', firstSeen: '2025-01-01T00:00:00.000Z', lastSeen: '2025-02-01T00:00:00.000Z', volume: 3 },
    ]);
    const price = merged.properties.find((row) => row.path === 'price');
    expect(price).toMatchObject({ scope: 'properties', typeCounts: { number: 2, string: 1 }, volume: 3 });
    expect(price!.firstSeen).toBe('2025-01-01T00:00:00.000Z');
    const keys = merged.properties.map((row) => [row.workspaceId, row.type, row.name, row.scope, row.path].join('|'));
    expect(keys).toEqual([...keys].sort());
  });
});

describe('catalogue store', () => {
  let t: TestApp;
  let serverKey: string;
  beforeAll(async () => {
    t = await startTestApp();
    const res = await t.app.inject({
      method: 'POST',
      url: '/admin/workspaces/acme/keys',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      payload: { kind: 'server' },
    });
    serverKey = res.json().key;
  });
  afterAll(async () => t.close());

  const read = (url: string) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${serverKey}` } });

  const drainAll = async () => {
    let taken = 0;
    for (let drained; (drained = await drainCatalogueQueue(t.db)).taken > 0; ) taken += drained.taken;
    return taken;
  };
  const queuedRows = async (workspaceId: string) =>
    (await t.db.query<{ n: number }>('select count(*)::int as n from catalogue_queue where workspace_id = $1', [workspaceId])).rows[0]!.n;

  it('discovers events and property types from ingested events via the catalogue queue', async () => {
    const auth = { authorization: basicAuth(t.writeKey) };
    const batch = [
      { type: 'track', userId: 'u1', event: 'Order Completed', properties: { total: 10, currency: 'EUR', products: [{ sku: 'a', price: 5 }] } },
      { type: 'track', userId: 'u2', event: 'Order Completed', properties: { total: '12', coupon: null } },
      { type: 'identify', userId: 'u1', traits: { email: 'u1@example.com', age: 30 } },
      { type: 'page', anonymousId: 'x', name: 'Home' },
      { type: 'page', anonymousId: 'x' },
    ];
    expect((await t.app.inject({ method: 'POST', url: '/v1/batch', headers: auth, payload: { batch } })).json()).toMatchObject({ accepted: 5 });
    expect((await t.app.inject({ method: 'POST', url: '/v1/track', headers: auth, payload: { userId: 'u3', event: 'Order Completed', properties: { total: 7 } } })).statusCode).toBe(200);
    // A retry stores nothing, so it queues nothing either.
    const again = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: auth, payload: { batch: [{ ...batch[0], messageId: 'm1' }] } });
    expect(again.json()).toMatchObject({ accepted: 1 });
    expect((await t.app.inject({ method: 'POST', url: '/v1/batch', headers: auth, payload: { batch: [{ ...batch[0], messageId: 'm1' }] } })).json()).toMatchObject({
      duplicates: 1,
    });

    // One queue row per request that stored something; nothing is counted until a drain.
    expect(await queuedRows(t.workspace.id)).toBe(3);
    expect((await read('/v1/catalogue/events')).json().items).toEqual([]);
    expect(await drainAll()).toBe(3);
    expect(await queuedRows(t.workspace.id)).toBe(0);

    const listed = await read('/v1/catalogue/events');
    expect(listed.statusCode).toBe(200);
    const items = listed.json().items as Array<{ type: string; name: string; volume: number; propertyCount: number }>;
    expect(items[0]).toMatchObject({ type: 'track', name: 'Order Completed', volume: 4 });
    expect(items.map((item) => `${item.type}:${item.name}:${item.volume}`).sort()).toEqual(
      ['identify::1', 'page::1', 'page:Home:1', 'track:Order Completed:4'].sort(),
    );

    const detail = await read(`/v1/catalogue/events/track/${encodeURIComponent('Order Completed')}`);
    expect(detail.statusCode).toBe(200);
    const properties = detail.json().properties as Array<{ scope: string; path: string; types: Record<string, number>; volume: number }>;
    const byPath = Object.fromEntries(properties.filter((p) => p.scope === 'properties').map((p) => [p.path, p.types]));
    expect(byPath).toEqual({
      total: { number: 3, string: 1 },
      currency: { string: 2 },
      coupon: { null: 1 },
      products: { array: 2 },
      'products[]': { object: 2 },
      'products[].sku': { string: 2 },
      'products[].price': { number: 2 },
    });
    expect(detail.json()).toMatchObject({ propertyCount: properties.length, volume: 4 });

    const identify = await read('/v1/catalogue/events/identify');
    expect(identify.statusCode).toBe(200);
    expect(identify.json().properties.map((p: { scope: string; path: string }) => `${p.scope}.${p.path}`)).toEqual(['traits.age', 'traits.email']);
    expect((await read('/v1/catalogue/events?type=page')).json().items).toHaveLength(2);
  });

  it('answers 404 for an event never seen and 400 for an unknown type', async () => {
    const missing = await read('/v1/catalogue/events/track/Never');
    expect(missing.statusCode).toBe(404);
    const badType = await read('/v1/catalogue/events/click/Buy');
    expect(badType.statusCode).toBe(400);
    expect(badType.json()).toMatchObject({ field: 'type' });
  });

  it('draining adds up: volumes sum, first/last seen widen, type counts merge', async () => {
    const ws = await t.addWorkspace('sums');
    const queue = (raw: Record<string, unknown>, at: string) => queueCatalogueObservations(t.db, ws.workspace.id, [event(raw, at)]);
    await queue({ type: 'track', userId: 'a', event: 'Tap', properties: { x: 1 } }, '2025-03-02T00:00:00.000Z');
    await queue({ type: 'track', userId: 'a', event: 'Tap', properties: { x: 'one' } }, '2025-03-01T00:00:00.000Z');
    // Drained in two transactions, so the second adds to rows the first created.
    expect((await drainCatalogueQueue(t.db, 1)).taken).toBe(1);
    await queue({ type: 'track', userId: 'a', event: 'Tap', properties: { x: 2, y: true } }, '2025-03-03T00:00:00.000Z');
    expect(await drainAll()).toBe(2);
    const { rows } = await t.db.query(
      `select path, type_counts, volume, first_seen, last_seen from event_catalogue_properties where workspace_id = $1 order by path`,
      [ws.workspace.id],
    );
    expect(rows).toEqual([
      { path: 'x', type_counts: { number: 2, string: 1 }, volume: 3, first_seen: new Date('2025-03-01T00:00:00Z'), last_seen: new Date('2025-03-03T00:00:00Z') },
      { path: 'y', type_counts: { boolean: 1 }, volume: 1, first_seen: new Date('2025-03-03T00:00:00Z'), last_seen: new Date('2025-03-03T00:00:00Z') },
    ]);
    const events = await t.db.query('select volume, first_seen, last_seen from event_catalogue where workspace_id = $1', [ws.workspace.id]);
    expect(events.rows).toEqual([{ volume: 3, first_seen: new Date('2025-03-01T00:00:00Z'), last_seen: new Date('2025-03-03T00:00:00Z') }]);
  });

  it('concurrent drains over the same events neither deadlock, double count nor lose counts', async () => {
    const ws = await t.addWorkspace('busy');
    const names = ['A', 'B', 'C', 'D', 'E', 'F'];
    for (let i = 0; i < 24; i++) {
      // Each request touches every event, in a different order.
      const order = i % 2 === 0 ? names : [...names].reverse();
      await queueCatalogueObservations(
        t.db,
        ws.workspace.id,
        order.map((name) => event({ type: 'track', userId: 'u', event: name, properties: { [`p${name}`]: i, shared: i } })),
      );
    }
    // Four drains at once, two rows each, until the queue is empty: skip locked hands each row to one of them.
    const taken = await Promise.all(
      Array.from({ length: 4 }, async () => {
        let total = 0;
        for (let drained; (drained = await drainCatalogueQueue(t.db, 2)).taken > 0; ) total += drained.taken;
        return total;
      }),
    );
    expect(taken.reduce((sum, n) => sum + n, 0)).toBe(24);
    const { rows } = await t.db.query<{ event_name: string; volume: number }>(
      'select event_name, volume from event_catalogue where workspace_id = $1 order by event_name',
      [ws.workspace.id],
    );
    expect(rows).toEqual(names.map((name) => ({ event_name: name, volume: 24 })));
    const shared = await t.db.query(
      `select sum(volume)::int as volume from event_catalogue_properties where workspace_id = $1 and path = 'shared'`,
      [ws.workspace.id],
    );
    expect(shared.rows).toEqual([{ volume: 24 * names.length }]);
  });

  it('keeps malformed queued observations with a clear reason, never retries them, and still applies the valid ones', async () => {
    const ws = await t.addWorkspace('broken');
    const valid = observeEvents([event({ type: 'track', userId: 'a', event: 'Ok' })]);
    const insert = (observations: unknown) =>
      t.db.query('insert into catalogue_queue (workspace_id, observations) values ($1, $2::jsonb)', [ws.workspace.id, JSON.stringify(observations)]);
    await insert({ workspaceId: ws.workspace.id });
    await insert([valid[0], { type: 'click' }]);
    await insert([{ ...valid[0], lastSeen: 'yesterday' }]);
    await insert(null);
    await queueCatalogueObservations(t.db, ws.workspace.id, [event({ type: 'track', userId: 'a', event: 'Ok' })]);

    const drained = await drainCatalogueQueue(t.db);
    expect(drained.taken).toBe(5);
    drained.refused.sort((a, b) => a.queueId - b.queueId);
    expect(drained.refused.map((row) => row.reason)).toEqual([
      expect.stringMatching(/^Invalid catalogue observations at \/: Expected array/),
      'Invalid catalogue observations at /1/name: Expected required property',
      'Invalid catalogue observations at /0/lastSeen: expected an ISO-8601 date-time',
      expect.stringMatching(/^Invalid catalogue observations at \/: Expected array/),
    ]);
    const kept = await t.db.query<{ id: number; observations: unknown; refused_reason: string }>(
      'select id, observations, refused_reason from catalogue_queue where workspace_id = $1 order by id',
      [ws.workspace.id],
    );
    expect(kept.rows.map((row) => row.id)).toEqual(drained.refused.map((row) => row.queueId));
    expect(kept.rows.map((row) => row.refused_reason)).toEqual(drained.refused.map((row) => row.reason));
    expect(kept.rows.map((row) => row.observations)).toEqual([{ workspaceId: ws.workspace.id }, [valid[0], { type: 'click' }], [{ ...valid[0], lastSeen: 'yesterday' }], null]);
    // Only the well-formed request counted; the refused ones are never taken again.
    const { rows } = await t.db.query('select event_name, volume from event_catalogue where workspace_id = $1', [ws.workspace.id]);
    expect(rows).toEqual([{ event_name: 'Ok', volume: 1 }]);
    expect((await drainCatalogueQueue(t.db)).taken).toBe(0);
    expect(checkQueuedObservations(valid)).toEqual({ ok: true, observations: valid });
  });

  it('a drain PostgreSQL refuses leaves its rows queued, and the next one counts them once', async () => {
    const ws = await t.addWorkspace('refusing');
    await queueCatalogueObservations(t.db, ws.workspace.id, [event({ type: 'track', userId: 'a', event: 'Later' })]);
    await t.db.query(`create function refuse_catalogue() returns trigger language plpgsql as $$
      begin raise exception 'catalogue is read-only for this test'; end $$`);
    await t.db.query('create trigger refuse before insert on event_catalogue for each row execute function refuse_catalogue()');
    try {
      await expect(drainCatalogueQueue(t.db)).rejects.toThrow(/read-only for this test/);
    } finally {
      await t.db.query('drop trigger refuse on event_catalogue');
    }
    expect(await queuedRows(ws.workspace.id)).toBe(1);
    expect(await drainAll()).toBe(1);
    const { rows } = await t.db.query('select event_name, volume from event_catalogue where workspace_id = $1', [ws.workspace.id]);
    expect(rows).toEqual([{ event_name: 'Later', volume: 1 }]);
  });

  it('counts exactly the events stored by concurrent ingest while two workers drain concurrently', async () => {
    const ws = await t.addWorkspace('exact');
    const auth = { authorization: basicAuth(ws.writeKey) };
    const names = ['Viewed', 'Added', 'Bought'];
    const batchOf = (request: number) =>
      Array.from({ length: 25 }, (_, i) => ({
        type: i % 5 === 4 ? 'identify' : 'track',
        userId: `u${i % 7}`,
        event: names[(request + i) % names.length],
        // Every third request resends the previous one's ids: those events are duplicates, not stored again.
        messageId: `r${request % 3 === 2 ? request - 1 : request}-${i}`,
        properties: { request, i },
      }));
    const errors: unknown[] = [];
    const workers = Array.from({ length: 2 }, (_, n) =>
      startPollingLoop({
        name: `catalogue ${n}`,
        drainOnce: async () => (await drainCatalogueQueue(t.db, 3)).taken,
        pollMs: 5,
        onError: (error) => errors.push(error),
      }),
    );
    let accepted = 0;
    let duplicates = 0;
    try {
      const requests = Array.from({ length: 60 }, (_, request) => request);
      // Eight requests in flight at a time while both workers drain.
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let request; (request = requests.shift()) !== undefined; ) {
            const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: auth, payload: { batch: batchOf(request) } });
            expect(res.statusCode).toBe(200);
            accepted += res.json().accepted;
            duplicates += res.json().duplicates;
          }
        }),
      );
      // Let the workers finish what is queued.
      for (let waited = 0; (await queuedRows(ws.workspace.id)) > 0; waited += 20) {
        if (waited > 20_000) throw new Error('the catalogue workers did not drain the queue');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
    }
    expect(errors).toEqual([]);
    expect(accepted + duplicates).toBe(60 * 25);
    expect(duplicates).toBe(20 * 25);
    const stored = await t.db.query<{ type: string; event: string | null; n: number }>(
      `select type, coalesce(event, '') as event, count(*)::int as n from events where workspace_id = $1 group by 1, 2 order by 1, 2`,
      [ws.workspace.id],
    );
    expect(stored.rows.reduce((sum, row) => sum + row.n, 0)).toBe(accepted);
    const counted = await t.db.query<{ type: string; event: string; n: number }>(
      `select event_type as type, event_name as event, volume as n from event_catalogue where workspace_id = $1 order by 1, 2`,
      [ws.workspace.id],
    );
    expect(counted.rows).toEqual(stored.rows);
    const requestPath = await t.db.query<{ volume: number }>(
      `select sum(volume)::int as volume from event_catalogue_properties where workspace_id = $1 and path = 'request'`,
      [ws.workspace.id],
    );
    // identify events carry traits, so only track events' properties are observed.
    const tracks = stored.rows.filter((row) => row.type === 'track').reduce((sum, row) => sum + row.n, 0);
    expect(tracks).toBeGreaterThan(0);
    expect(requestPath.rows[0]!.volume).toBe(tracks);
  });
});

describe('catalogue queue migration', () => {
  it('moves observations waiting in catalogue.observe jobs into the queue and leaves malformed or running jobs alone', async () => {
    const database = await createTestDatabase();
    const db = database.db;
    try {
      const { rows } = await db.query<{ id: string }>(`insert into workspaces (slug, name) values ('old', 'Old') returning id`);
      const workspaceId = rows[0]!.id;
      const observations = observeEvents([
        event({ type: 'track', userId: 'a', event: 'Pending' }),
        event({ type: 'track', userId: 'b', event: 'Pending', properties: { x: 1 } }),
      ]);
      // The database as it was before 0005, with jobs the old ingest enqueued.
      await db.query(`drop table catalogue_queue`);
      await db.query(`delete from schema_migrations where name = '0005_catalogue_queue'`);
      const addJob = (payload: unknown) =>
        db.query<{ id: string }>(`select id from graphile_worker.add_job('catalogue.observe', $1::json)`, [JSON.stringify(payload)]);
      await addJob([
        { workspaceId, observations },
        { workspaceId, observations: observeEvents([event({ type: 'identify', userId: 'a' })]) },
      ]);
      await addJob({ not: 'an array' });
      await addJob([{ workspaceId: 'not-a-uuid', observations }]);
      const running = (await addJob([{ workspaceId, observations }])).rows[0]!.id;
      await db.query(`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'old worker' where id = $1`, [running]);

      expect(await migrate(db)).toEqual(['0005_catalogue_queue']);

      const queued = await db.query('select workspace_id, observations from catalogue_queue order by id');
      expect(queued.rows).toEqual([
        { workspace_id: workspaceId, observations },
        { workspace_id: workspaceId, observations: observeEvents([event({ type: 'identify', userId: 'a' })]) },
      ]);
      const left = await db.query<{ payload: unknown }>(
        `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
          where t.identifier = 'catalogue.observe' order by j.id`,
      );
      expect(left.rows.map((row) => row.payload)).toEqual([{ not: 'an array' }, [{ workspaceId: 'not-a-uuid', observations }], [{ workspaceId, observations }]]);
      expect((await drainCatalogueQueue(db)).taken).toBe(2);
      const counted = await db.query('select event_type, event_name, volume from event_catalogue order by 1, 2');
      expect(counted.rows).toEqual([
        { event_type: 'identify', event_name: '', volume: 1 },
        { event_type: 'track', event_name: 'Pending', volume: 2 },
      ]);
    } finally {
      await database.drop();
    }
  });
});
