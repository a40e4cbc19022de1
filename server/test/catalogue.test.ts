import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeObservations } from '../src/catalogue/merge.ts';
import { observeEvents } from '../src/catalogue/observe.ts';
import { applyCatalogueJob, InvalidCatalogueJobError } from '../src/catalogue/store.ts';
import { normalizeEvent, type NormalizedEvent } from '../src/ingest/normalize.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

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

  it('discovers events and property types from ingested events via the queued catalogue jobs', async () => {
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

    // The ingest transaction queued the observations; run exactly those jobs' payloads.
    const jobs = await t.db.query<{ payload: unknown }>(
      `select j.payload from graphile_worker._private_jobs j
         join graphile_worker._private_tasks task on task.id = j.task_id
        where task.identifier = 'catalogue.observe'`,
    );
    expect(jobs.rows.length).toBeGreaterThan(0);
    for (const job of jobs.rows) await applyCatalogueJob(t.db, job.payload);

    const listed = await read('/v1/catalogue/events');
    expect(listed.statusCode).toBe(200);
    const items = listed.json().items as Array<{ type: string; name: string; volume: number; propertyCount: number }>;
    expect(items[0]).toMatchObject({ type: 'track', name: 'Order Completed', volume: 3 });
    expect(items.map((item) => `${item.type}:${item.name}:${item.volume}`).sort()).toEqual(
      ['identify::1', 'page::1', 'page:Home:1', 'track:Order Completed:3'].sort(),
    );

    const detail = await read(`/v1/catalogue/events/track/${encodeURIComponent('Order Completed')}`);
    expect(detail.statusCode).toBe(200);
    const properties = detail.json().properties as Array<{ scope: string; path: string; types: Record<string, number>; volume: number }>;
    const byPath = Object.fromEntries(properties.filter((p) => p.scope === 'properties').map((p) => [p.path, p.types]));
    expect(byPath).toEqual({
      total: { number: 2, string: 1 },
      currency: { string: 1 },
      coupon: { null: 1 },
      products: { array: 1 },
      'products[]': { object: 1 },
      'products[].sku': { string: 1 },
      'products[].price': { number: 1 },
    });
    expect(detail.json()).toMatchObject({ propertyCount: properties.length, volume: 3 });

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

  it('applying jobs adds up: volumes sum, first/last seen widen, type counts merge', async () => {
    const ws = await t.addWorkspace('sums');
    const job = (raw: Record<string, unknown>, at: string) => [{ workspaceId: ws.workspace.id, observations: observeEvents([event(raw, at)]) }];
    await applyCatalogueJob(t.db, job({ type: 'track', userId: 'a', event: 'Tap', properties: { x: 1 } }, '2025-03-02T00:00:00.000Z'));
    await applyCatalogueJob(t.db, job({ type: 'track', userId: 'a', event: 'Tap', properties: { x: 'one' } }, '2025-03-01T00:00:00.000Z'));
    await applyCatalogueJob(t.db, job({ type: 'track', userId: 'a', event: 'Tap', properties: { x: 2, y: true } }, '2025-03-03T00:00:00.000Z'));
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

  it('concurrent jobs over the same events neither deadlock nor lose counts', async () => {
    const ws = await t.addWorkspace('busy');
    const names = ['A', 'B', 'C', 'D', 'E', 'F'];
    const jobs = Array.from({ length: 8 }, (_, i) => {
      // Each job touches every event, in a different order.
      const order = i % 2 === 0 ? names : [...names].reverse();
      const events = order.map((name) => event({ type: 'track', userId: 'u', event: name, properties: { [`p${name}`]: i, shared: i } }));
      return [{ workspaceId: ws.workspace.id, observations: observeEvents(events) }];
    });
    await Promise.all(jobs.map((job) => applyCatalogueJob(t.db, job)));
    const { rows } = await t.db.query<{ event_name: string; volume: number }>(
      'select event_name, volume from event_catalogue where workspace_id = $1 order by event_name',
      [ws.workspace.id],
    );
    expect(rows).toEqual(names.map((name) => ({ event_name: name, volume: 8 })));
    const shared = await t.db.query(
      `select sum(volume)::int as volume from event_catalogue_properties where workspace_id = $1 and path = 'shared'`,
      [ws.workspace.id],
    );
    expect(shared.rows).toEqual([{ volume: 8 * names.length }]);
  });

  it('refuses a malformed job payload with a clear error and writes nothing', async () => {
    const ws = await t.addWorkspace('broken');
    const valid = { workspaceId: ws.workspace.id, observations: observeEvents([event({ type: 'track', userId: 'a', event: 'Ok' })]) };
    await expect(applyCatalogueJob(t.db, { workspaceId: ws.workspace.id })).rejects.toThrow(InvalidCatalogueJobError);
    await expect(applyCatalogueJob(t.db, [valid, { workspaceId: ws.workspace.id, observations: [{ type: 'click' }] }])).rejects.toThrow(
      /Invalid catalogue.observe payload at \/1\/observations\/0/,
    );
    const { rows } = await t.db.query('select count(*)::int as n from event_catalogue where workspace_id = $1', [ws.workspace.id]);
    expect(rows).toEqual([{ n: 0 }]);
  });
});
