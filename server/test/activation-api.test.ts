import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resumeSweep } from '../src/activation/sync.ts';
import { createKey, createWorkspace } from '../src/workspaces/store.ts';
import { createSegment, startActivationApp, type ActivationTestApp } from './activation-support.ts';

describe('destinations API', () => {
  let t: ActivationTestApp;
  beforeAll(async () => {
    t = await startActivationApp();
    await createSegment(t.db, t.workspaceId, 'vip', 'VIP');
    await createSegment(t.db, t.workspaceId, '流失风险', 'Churn risk');
  });
  afterAll(async () => t.close());

  const create = (body: object) => t.call('POST', '/v1/destinations', body);

  it('creates a webhook destination, shows a generated secret once, and never again', async () => {
    const res = await create({ name: 'CRM', url: 'https://crm.example.com/hooks/touchpoint' });
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json();
    expect(created).toMatchObject({
      name: 'CRM',
      kind: 'webhook',
      url: 'https://crm.example.com/hooks/touchpoint',
      status: 'active',
      settings: { batchSize: 500, maxAttempts: 8, timeoutMs: 10_000, backoffBaseMs: 1000, backoffMaxMs: 600_000, identifiers: null },
      segments: [],
    });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.secretHint).toBe(created.secret.slice(-4));

    const read = await t.call('GET', `/v1/destinations/${created.id}`);
    expect(read.statusCode).toBe(200);
    expect(read.json().secret).toBeUndefined();
    expect(JSON.stringify(read.json())).not.toContain(created.secret);
    const list = await t.call('GET', '/v1/destinations');
    expect(list.json().items.map((d: { id: string }) => d.id)).toContain(created.id);
    expect(JSON.stringify(list.json())).not.toContain(created.secret);
  });

  it('keeps a given secret and settings', async () => {
    const res = await create({
      name: 'Ads',
      url: 'http://127.0.0.1:9/x',
      secret: 'my-own-secret-of-16+',
      status: 'paused',
      settings: { batchSize: 100, maxAttempts: 3, identifiers: ['email', 'phone'] },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({
      secret: 'my-own-secret-of-16+',
      status: 'paused',
      settings: { batchSize: 100, maxAttempts: 3, timeoutMs: 10_000, identifiers: ['email', 'phone'] },
    });
  });

  it('refuses bad input with the field at fault', async () => {
    const cases: Array<[object, number, string | undefined, RegExp]> = [
      [{ name: 'X', url: 'ftp://example.com/x' }, 400, 'url', /http or https/],
      [{ name: 'X', url: 'not a url' }, 400, 'url', /absolute URL/],
      [{ name: 'X', url: 'https://user:pw@example.com/' }, 400, 'url', /credentials/],
      [{ name: 'X', url: 'https://example.com/#frag' }, 400, 'url', /fragment/],
      [{ name: 'X', url: 'https://example.com/', kind: 'email' }, 400, 'kind', /./],
      [{ name: 'X', url: 'https://example.com/', secret: 'short' }, 400, 'secret', /./],
      [{ name: 'X', url: 'https://example.com/', settings: { batchSize: 0 } }, 400, 'settings.batchSize', /./],
      [{ name: 'X', url: 'https://example.com/', settings: { maxAttempts: 51 } }, 400, 'settings.maxAttempts', /./],
      [{ name: 'X', url: 'https://example.com/', settings: { retries: 3 } }, 400, 'settings.retries', /./],
      [{ name: 'X', url: 'https://example.com/', settings: { identifiers: ['email', 'emial'] } }, 400, 'settings.identifiers.1', /Unknown identifier type "emial"/],
      [{ name: 'X', url: 'https://example.com/', settings: { backoffBaseMs: 5000, backoffMaxMs: 1000 } }, 400, 'settings.backoffMaxMs', /below/],
      [{ name: 'CRM', url: 'https://example.com/' }, 409, 'name', /already exists/],
      [{ url: 'https://example.com/' }, 400, 'name', /./],
    ];
    for (const [body, status, field, message] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
      expect(res.json().field, JSON.stringify(body)).toBe(field);
      expect(res.json().message).toMatch(message);
    }
  });

  it('updates fields, merges settings, rotates the secret', async () => {
    const created = (await create({ name: 'To update', url: 'https://a.example.com/', settings: { batchSize: 10 } })).json();
    const patched = await t.call('PATCH', `/v1/destinations/${created.id}`, { name: 'Updated', url: 'https://b.example.com/', settings: { maxAttempts: 2 } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ name: 'Updated', url: 'https://b.example.com/', settings: { batchSize: 10, maxAttempts: 2 } });
    expect(patched.json().secret).toBeUndefined();

    const rotated = await t.call('PATCH', `/v1/destinations/${created.id}`, { rotateSecret: true });
    expect(rotated.json().secret).toMatch(/^whsec_/);
    expect(rotated.json().secret).not.toBe(created.secret);
    const { rows } = await t.db.query('select secret from destinations where id = $1', [created.id]);
    expect(rows[0].secret).toBe(rotated.json().secret);

    const both = await t.call('PATCH', `/v1/destinations/${created.id}`, { rotateSecret: true, secret: 'x'.repeat(20) });
    expect(both.statusCode).toBe(400);
    expect(both.json().field).toBe('rotateSecret');
    const badUrl = await t.call('PATCH', `/v1/destinations/${created.id}`, { url: 'gopher://x' });
    expect(badUrl.json()).toMatchObject({ field: 'url' });
    const clash = await t.call('PATCH', `/v1/destinations/${created.id}`, { name: 'CRM' });
    expect(clash.statusCode).toBe(409);
    const missing = await t.call('PATCH', '/v1/destinations/00000000-0000-4000-8000-000000000000', { name: 'n' });
    expect(missing.statusCode).toBe(404);
  });

  it('connects and disconnects segments by key', async () => {
    const destination = (await create({ name: 'Segments', url: 'https://s.example.com/' })).json();
    const base = `/v1/destinations/${destination.id}/segments`;
    const connected = await t.call('POST', base, { segment: '流失风险', sendExisting: true });
    expect(connected.statusCode, connected.body).toBe(201);
    expect(connected.json()).toMatchObject({
      segment: { key: '流失风险', name: 'Churn risk' },
      status: 'active',
      backfillPending: true,
      pendingBatch: null,
      deliveredBatches: 0,
    });
    expect((await t.call('POST', base, { segment: 'vip' })).json()).toMatchObject({ backfillPending: false });

    const again = await t.call('POST', base, { segment: 'vip' });
    expect(again.statusCode).toBe(409);
    expect(again.json().field).toBe('segment');
    const unknown = await t.call('POST', base, { segment: 'nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ field: 'segment', message: 'Segment "nope" not found' });
    const noDestination = await t.call('POST', '/v1/destinations/00000000-0000-4000-8000-000000000000/segments', { segment: 'vip' });
    expect(noDestination.statusCode).toBe(404);

    const read = await t.call('GET', `/v1/destinations/${destination.id}`);
    expect(read.json().segments.map((s: { segment: { key: string } }) => s.segment.key)).toEqual(['流失风险', 'vip']);
    // Connecting starts the sweep task.
    const { rows } = await t.db.query(
      `select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
        where k.identifier = 'activation.sweep'`,
    );
    expect(rows[0].n).toBe(1);
    // A lost sweep (e.g. one that exhausted its retries) is started again when the server starts.
    await t.db.query(`delete from graphile_worker._private_jobs`);
    expect(await resumeSweep(t.db)).toBe(true);
    const { rows: resumed } = await t.db.query(
      `select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
        where k.identifier = 'activation.sweep'`,
    );
    expect(resumed[0].n).toBe(1);

    const gone = await t.call('DELETE', `${base}/${encodeURIComponent('流失风险')}`);
    expect(gone.statusCode).toBe(204);
    expect((await t.call('DELETE', `${base}/${encodeURIComponent('流失风险')}`)).statusCode).toBe(404);
    expect((await t.call('GET', `/v1/destinations/${destination.id}`)).json().segments).toHaveLength(1);
  });

  it('deletes a destination with its connections', async () => {
    const destination = (await create({ name: 'Short-lived', url: 'https://d.example.com/' })).json();
    await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'vip' });
    expect((await t.call('DELETE', `/v1/destinations/${destination.id}`)).statusCode).toBe(204);
    expect((await t.call('GET', `/v1/destinations/${destination.id}`)).statusCode).toBe(404);
    const { rows } = await t.db.query('select count(*)::int as n from destination_segments where destination_id = $1', [destination.id]);
    expect(rows[0].n).toBe(0);
    expect((await t.call('DELETE', `/v1/destinations/${destination.id}`)).statusCode).toBe(404);
  });

  it('lists dead letters newest first with a cursor, filtered by status', async () => {
    const destination = (await create({ name: 'Dead', url: 'https://dead.example.com/' })).json();
    const { rows: segments } = await t.db.query<{ id: string }>(`select id from segments where workspace_id = $1 and key = 'vip'`, [t.workspaceId]);
    for (let i = 0; i < 5; i++) {
      await t.db.query(
        `insert into destination_dead_letters (workspace_id, destination_id, segment_id, batch_id, payload, change_count, attempts, last_error,
                                               first_attempt_at, last_attempt_at, created_at)
         values ($1, $2, $3, gen_random_uuid(), $4::json, 1, 8, 'HTTP 500', now(), now(), now() - make_interval(mins => $5))`,
        [t.workspaceId, destination.id, segments[0]!.id, JSON.stringify({ changes: [{ n: i }] }), i],
      );
    }
    const base = `/v1/destinations/${destination.id}/dead-letters`;
    const first = await t.call('GET', `${base}?limit=2`);
    expect(first.statusCode).toBe(200);
    const page1 = first.json();
    expect(page1.items).toHaveLength(2);
    const page2 = (await t.call('GET', `${base}?limit=2&cursor=${page1.nextCursor}`)).json();
    const page3 = (await t.call('GET', `${base}?limit=2&cursor=${page2.nextCursor}`)).json();
    expect(page3.nextCursor).toBeNull();
    const all = [...page1.items, ...page2.items, ...page3.items];
    expect(all).toHaveLength(5);
    const payloads = [];
    for (const item of all) payloads.push((await t.call('GET', `${base}/${item.id}`)).json().payload.changes[0].n);
    expect(payloads).toEqual([0, 1, 2, 3, 4]);

    await t.call('POST', `${base}/${all[0].id}/discard`);
    expect((await t.call('GET', `${base}?status=discarded`)).json().items.map((i: { id: string }) => i.id)).toEqual([all[0].id]);
    expect((await t.call('GET', `${base}?status=dead`)).json().items).toHaveLength(4);
    expect((await t.call('GET', `${base}?cursor=garbage`)).json()).toMatchObject({ error: 'invalid_cursor', field: 'cursor' });
    expect((await t.call('GET', `${base}/00000000-0000-4000-8000-000000000000`)).statusCode).toBe(404);
  });

  it('is invisible to other workspaces and closed without a server key', async () => {
    const mine = (await create({ name: 'Mine', url: 'https://m.example.com/' })).json();
    const other = await createWorkspace(t.db, { slug: 'other', name: 'Other' });
    const otherKey = (await createKey(t.db, other.id, { kind: 'server' })).key;
    expect((await t.call('GET', `/v1/destinations/${mine.id}`, undefined, otherKey)).statusCode).toBe(404);
    expect((await t.call('GET', '/v1/destinations', undefined, otherKey)).json().items).toEqual([]);
    expect((await t.call('DELETE', `/v1/destinations/${mine.id}`, undefined, otherKey)).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/v1/destinations' })).statusCode).toBe(401);
    expect((await t.call('GET', '/v1/destinations/not-a-uuid')).json()).toMatchObject({ error: 'invalid_request' });
  });
});
