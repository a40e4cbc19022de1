import { openQuarantinePayload } from '../src/privacy/sealed-payloads.ts';
import { isSealedValue, openPii } from '../src/privacy/pii-codec.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareReplay, recordToPayload } from '../src/ingest/quarantine.ts';
import { quarantine } from '../src/ingest/store.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('quarantine', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  const base = '/admin/workspaces/acme/quarantine';
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    t.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  const send = (endpoint: string, payload: unknown) =>
    t.app.inject({ method: 'POST', url: `/v1/${endpoint}`, headers: { authorization: basicAuth(t.writeKey) }, payload: payload as object });
  const storedEvents = async (messageId: string) =>
    (
      await t.db.query<{ user_id: string; event: string; context: unknown; source_id: string }>(
        'select user_id, event, context, source_id from events where workspace_id = $1 and message_id = $2',
        [t.workspace.id, messageId],
      )
    ).rows;
  /** Quarantines an item through the collection API and returns its id. */
  const reject = async (endpoint: string, payload: unknown): Promise<string> => {
    const res = await send(endpoint, payload);
    if (endpoint === 'batch') {
      const rejected = res.json().rejected as Array<{ quarantineId: string }>;
      return rejected[0]!.quarantineId;
    }
    expect(res.statusCode).toBe(400);
    return res.json().quarantineId as string;
  };

  it('lists and shows a rejected item with its payload as received', async () => {
    const body = { event: 'Order Completed', messageId: 'q-show-1', properties: { total: 12.5, tags: ['a', 'b'] } };
    const id = await reject('track', body);

    const listed = await call('GET', base);
    expect(listed.statusCode).toBe(200);
    const item = (listed.json().items as Array<{ id: string }>).find((i) => i.id === id);
    expect(item).toMatchObject({
      id,
      sourceId: t.source.id,
      endpoint: 'track',
      messageId: 'q-show-1',
      reason: 'missing_identity',
      field: 'userId',
      status: 'open',
      resolvedAt: null,
      replayedMessageId: null,
    });
    expect(item).not.toHaveProperty('payload');

    const shown = await call('GET', `${base}/${id}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toMatchObject({ id, reason: 'missing_identity', payload: body });
    expect(shown.json().errors).toEqual([{ error: 'missing_identity', field: 'userId', message: 'userId or anonymousId is required' }]);
  });

  it('keeps characters jsonb cannot hold, and shows them back exactly', async () => {
    const body = { userId: 'u-nul', event: 'Odd', messageId: 'q-nul', properties: { note: 'nul \u0000 here', lone: '\ud800' } };
    const id = await reject('track', body);
    const shown = (await call('GET', `${base}/${id}`)).json();
    expect(shown).toMatchObject({ reason: 'invalid_character', payload: body });
    // Still unstorable as is; stored once the characters are removed.
    expect((await call('POST', `${base}/${id}/replay`)).statusCode).toBe(422);
    const fixed = await call('POST', `${base}/${id}/replay`, { payload: { ...body, properties: { note: 'nul here' } } });
    expect(fixed.statusCode).toBe(200);
  });

  it('replay as received answers 422 with the reason while still invalid, and keeps the item open', async () => {
    const id = await reject('track', { event: 'Signed Up', messageId: 'q-still-bad' });
    const res = await call('POST', `${base}/${id}/replay`);
    expect(res.statusCode).toBe(422);
    expect(res.json()).toEqual({ error: 'missing_identity', message: 'userId or anonymousId is required', field: 'userId' });
    const item = (await call('GET', `${base}/${id}`)).json();
    expect(item.status).toBe('open');
    expect(item.errors).toHaveLength(2);
    expect(item.errors[1]).toMatchObject({ error: 'missing_identity', corrected: false });
    expect(await storedEvents('q-still-bad')).toEqual([]);
  });

  it('replays with a corrected payload, stores it under the source and marks the item replayed', async () => {
    const id = await reject('track', { event: 'Trial Started', messageId: 'q-fix-1', properties: { plan: 'pro' } });
    const stillWrong = await call('POST', `${base}/${id}/replay`, { payload: { userId: 'u-9', messageId: 'q-fix-1' } });
    expect(stillWrong.statusCode).toBe(422);
    expect(stillWrong.json()).toMatchObject({ error: 'missing_event', field: 'event' });
    // A failed correction is history; the item's own reason is unchanged.
    expect((await call('GET', `${base}/${id}`)).json()).toMatchObject({ status: 'open', reason: 'missing_identity' });

    const res = await call('POST', `${base}/${id}/replay`, {
      payload: { userId: 'u-9', event: 'Trial Started', messageId: 'q-fix-1', properties: { plan: 'pro' } },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ messageId: 'q-fix-1', duplicate: false, item: { id, status: 'replayed', replayedMessageId: 'q-fix-1' } });
    expect(res.json().item.resolvedAt).not.toBeNull();
    expect(await storedEvents('q-fix-1')).toEqual([{ user_id: 'u-9', event: 'Trial Started', context: null, source_id: t.source.id }]);
    const item = (await call('GET', `${base}/${id}`)).json();
    expect(item.errors).toHaveLength(2); // the original rejection and the failed correction
  });

  it('replaying twice never stores the event twice, with or without a messageId', async () => {
    const withId = await reject('track', { event: 'Paid', messageId: 'q-twice' });
    const fixed = { payload: { userId: 'u-1', event: 'Paid', messageId: 'q-twice' } };
    expect((await call('POST', `${base}/${withId}/replay`, fixed)).json()).toMatchObject({ duplicate: false });
    const again = await call('POST', `${base}/${withId}/replay`, fixed);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ duplicate: true, messageId: 'q-twice', item: { status: 'replayed' } });
    expect(await storedEvents('q-twice')).toHaveLength(1);

    // Without a messageId anywhere, the item's id gives every replay the same one.
    const withoutId = await reject('track', { event: 'Paid' });
    const correction = { payload: { userId: 'u-2', event: 'Paid' } };
    const first = (await call('POST', `${base}/${withoutId}/replay`, correction)).json();
    const second = (await call('POST', `${base}/${withoutId}/replay`, correction)).json();
    expect(first.messageId).toBe(`quarantine-${withoutId}`);
    expect(second).toMatchObject({ messageId: first.messageId, duplicate: true });
    expect(await storedEvents(first.messageId)).toHaveLength(1);
  });

  it('a replay of an event that was meanwhile sent again is a duplicate, not a second copy', async () => {
    const id = await reject('track', { event: 'Retried', messageId: 'q-retried' });
    expect((await send('track', { userId: 'u-3', event: 'Retried', messageId: 'q-retried' })).statusCode).toBe(200);
    const res = await call('POST', `${base}/${id}/replay`, { payload: { userId: 'u-3', event: 'Retried', messageId: 'q-retried' } });
    expect(res.json()).toMatchObject({ duplicate: true, item: { status: 'replayed' } });
    expect(await storedEvents('q-retried')).toHaveLength(1);
  });

  it('replays a batch item with the batch defaults it was received with', async () => {
    const res = await send('batch', {
      context: { app: { name: 'shop' } },
      batch: [
        { type: 'track', userId: 'u-4', event: 'Fine', messageId: 'q-batch-ok' },
        { type: 'track', userId: 'u-4', messageId: 'q-batch-bad' },
      ],
    });
    expect(res.json()).toMatchObject({ accepted: 1 });
    const id = res.json().rejected[0].quarantineId as string;
    expect((await call('GET', `${base}/${id}`)).json()).toMatchObject({ endpoint: 'batch', payload: { context: { app: { name: 'shop' } } } });
    const shown = (await call('GET', `${base}/${id}`)).json();
    const replayed = await call('POST', `${base}/${id}/replay`, { payload: { ...shown.payload, event: 'Fixed' } });
    expect(replayed.statusCode).toBe(200);
    expect(await storedEvents('q-batch-bad')).toEqual([{ user_id: 'u-4', event: 'Fixed', context: { app: { name: 'shop' } }, source_id: t.source.id }]);
  });

  it('uses the endpoint of a single call as the type, so a corrected payload needs none', async () => {
    const id = await reject('identify', { traits: { email: 'a@example.com' }, messageId: 'q-identify' });
    const res = await call('POST', `${base}/${id}/replay`, { payload: { userId: 'u-5', traits: { email: 'a@example.com' }, messageId: 'q-identify' } });
    expect(res.statusCode).toBe(200);
    const { rows } = await t.db.query('select type, traits from events where workspace_id = $1 and message_id = $2', [t.workspace.id, 'q-identify']);
    // traits.email is sealed at ingest (privacy/pii-codec.ts): stored not in clear, opened through the vault.
    expect(isSealedValue(rows[0]?.traits?.email)).toBe(true);
    expect(await openPii(t.db, t.workspace.id, rows)).toEqual([{ type: 'identify', traits: { email: 'a@example.com' } }]);
  });

  it('replays an item as received once its cause is gone (e.g. a rule since relaxed)', async () => {
    // Simulates an item a stricter rule rejected for a bad field although its payload is valid today.
    const payload = { type: 'track', userId: 'u-6', event: 'Legacy', messageId: 'q-as-is', properties: { sku: 12 } };
    const [item] = await quarantine(t.db, { workspaceId: t.workspace.id, sourceId: t.source.id }, 'batch', [
      { error: 'invalid_field', field: 'properties.sku', message: 'properties.sku must be a string', messageId: 'q-as-is', payload },
    ]);
    const res = await call('POST', `${base}/${item!.quarantineId}/replay`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ messageId: 'q-as-is', duplicate: false, item: { status: 'replayed', reason: 'invalid_field' } });
    expect(await storedEvents('q-as-is')).toHaveLength(1);
  });

  it('replays an item PostgreSQL refused from its stored record, keeping its times', async () => {
    const record = {
      message_id: 'q-record',
      timestamp: '2024-03-01T10:00:00.000Z',
      type: 'track',
      event: 'Imported',
      name: null,
      category: null,
      user_id: 'u-7',
      anonymous_id: null,
      previous_id: null,
      group_id: null,
      properties: { n: 1 },
      traits: null,
      context: null,
      integrations: null,
      extra: { shop: 'north' },
      original_timestamp: '2024-03-01T10:00:00.000Z',
      sent_at: null,
      received_at: '2024-03-01T10:00:05.000Z',
    };
    expect(recordToPayload(record)).toEqual({
      type: 'track',
      messageId: 'q-record',
      event: 'Imported',
      userId: 'u-7',
      properties: { n: 1 },
      originalTimestamp: '2024-03-01T10:00:00.000Z',
      shop: 'north',
    });
    const [item] = await quarantine(t.db, { workspaceId: t.workspace.id, sourceId: t.source.id }, 'import', [
      { error: 'storage_rejected', field: null, message: 'PostgreSQL refused the event', messageId: 'q-record', payload: record },
    ]);
    const res = await call('POST', `${base}/${item!.quarantineId}/replay`);
    expect(res.statusCode).toBe(200);
    const { rows } = await t.db.query(
      'select timestamp, received_at, extra, properties from events where workspace_id = $1 and message_id = $2',
      [t.workspace.id, 'q-record'],
    );
    expect(rows).toEqual([
      { timestamp: new Date(record.timestamp), received_at: new Date(record.received_at), extra: { shop: 'north' }, properties: { n: 1 } },
    ]);
  });

  it('prepareReplay validates exactly like collection (pure)', () => {
    const row = {
      id: '00000000-0000-4000-8000-000000000001',
      endpoint: 'page',
      reason: 'missing_identity',
      payload: JSON.stringify({ name: 'Home' }),
      received_at: new Date('2025-01-01T00:00:00Z'),
      message_id: null,
      replayed_message_id: null,
    };
    const asIs = prepareReplay(row);
    expect(asIs.ok).toBe(false);
    const fixed = prepareReplay(row, { payload: { name: 'Home', anonymousId: 'a-1' } });
    expect(fixed).toMatchObject({
      ok: true,
      event: { type: 'page', name: 'Home', messageId: `quarantine-${row.id}`, receivedAt: row.received_at, timestamp: row.received_at },
    });
    expect(prepareReplay(row, { payload: 'not an object' })).toMatchObject({ ok: false, rejection: { error: 'not_an_object' } });
  });

  it('discards an open item (kept, not deleted), idempotently; a replayed item cannot be discarded', async () => {
    const id = await reject('track', { event: 'Junk', messageId: 'q-junk' });
    const res = await call('POST', `${base}/${id}/discard`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id, status: 'discarded' });
    expect(res.json().resolvedAt).not.toBeNull();
    expect((await call('POST', `${base}/${id}/discard`)).json()).toMatchObject({ status: 'discarded' });
    const { rows } = await t.db.query<{ status: string; payload: string }>(
      'select status, payload from quarantine where workspace_id = $1 and id = $2',
      [t.workspace.id, id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.status).toBe('discarded');
    expect(rows[0]!.payload).toMatch(/^tpe1\./); // sealed at rest (privacy/sealed-payloads.ts)
    expect(JSON.parse(await openQuarantinePayload(t.db, t.workspace.id, rows[0]!.payload))).toMatchObject({ event: 'Junk', messageId: 'q-junk' });

    const replayedId = await reject('track', { event: 'Kept', messageId: 'q-kept' });
    await call('POST', `${base}/${replayedId}/replay`, { payload: { userId: 'u', event: 'Kept', messageId: 'q-kept' } });
    const refused = await call('POST', `${base}/${replayedId}/discard`);
    expect(refused.statusCode).toBe(409);
    expect((await call('GET', `${base}/${replayedId}`)).json()).toMatchObject({ status: 'replayed' });
  });

  it('answers 404 for unknown items and 400 for malformed ids, statuses and cursors', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await call('GET', `${base}/${unknown}`)).statusCode).toBe(404);
    expect((await call('POST', `${base}/${unknown}/replay`)).statusCode).toBe(404);
    expect((await call('POST', `${base}/${unknown}/discard`)).statusCode).toBe(404);
    const badId = await call('GET', `${base}/123`);
    expect(badId.statusCode).toBe(400);
    expect(badId.json()).toMatchObject({ field: 'id' });
    const badStatus = await call('GET', `${base}?status=closed`);
    expect(badStatus.statusCode).toBe(400);
    expect(badStatus.json()).toMatchObject({ field: 'status' });
    const badCursor = await call('GET', `${base}?cursor=abc`);
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json()).toMatchObject({ error: 'invalid_cursor', field: 'cursor' });
    const badBody = await call('POST', `${base}/${unknown}/replay`, { userId: 'x' });
    expect(badBody.statusCode).toBe(400);
    expect(badBody.json()).toMatchObject({ field: 'userId' });
  });

  it('filters by status, reason and source, and pages newest first without gaps or repeats', async () => {
    const other = await t.addWorkspace('pager');
    const otherBase = `/admin/workspaces/${other.workspace.slug}/quarantine`;
    const sourceB = (await call('POST', `/admin/workspaces/${other.workspace.slug}/sources`, { name: 'App', kind: 'app' })).json();
    const sendTo = (key: string, payload: object) =>
      t.app.inject({ method: 'POST', url: '/v1/track', headers: { authorization: basicAuth(key) }, payload });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await sendTo(other.writeKey, { event: `E${i}`, messageId: `p-${i}` })).json().quarantineId);
    ids.push((await sendTo(sourceB.writeKey.key, { userId: 'u' })).json().quarantineId); // missing_event
    const newestFirst = [...ids].reverse();

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ id: string }>; nextCursor: string | null } = (
        await call('GET', `${otherBase}?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      ).json();
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(newestFirst);

    const byReason = (await call('GET', `${otherBase}?reason=missing_event`)).json().items as Array<{ id: string }>;
    expect(byReason.map((item) => item.id)).toEqual([ids[5]]);
    const bySource = (await call('GET', `${otherBase}?sourceId=${other.source.id}`)).json().items as Array<{ id: string }>;
    expect(bySource.map((item) => item.id)).toEqual(newestFirst.slice(1));

    await call('POST', `${otherBase}/${ids[0]}/discard`);
    const open = (await call('GET', `${otherBase}?status=open`)).json().items as Array<{ id: string }>;
    expect(open.map((item) => item.id)).toEqual(newestFirst.slice(0, 5));
    const discarded = (await call('GET', `${otherBase}?status=discarded`)).json().items as Array<{ id: string }>;
    expect(discarded.map((item) => item.id)).toEqual([ids[0]]);
  });

  it('bulk replay stores the open items of a reason that are valid now and reports the rest', async () => {
    const ws = await t.addWorkspace('bulk');
    const source = { workspaceId: ws.workspace.id, sourceId: ws.source.id };
    const good = (n: number) => ({ type: 'track', userId: `u-${n}`, event: 'Bulk', messageId: `bulk-${n}` });
    await quarantine(t.db, source, 'batch', [
      { error: 'rate_limited', field: null, message: 'simulated', messageId: 'bulk-1', payload: good(1) },
      { error: 'rate_limited', field: null, message: 'simulated', messageId: 'bulk-2', payload: good(2) },
      { error: 'rate_limited', field: null, message: 'simulated', messageId: 'bulk-3', payload: { type: 'track', event: 'Bulk', messageId: 'bulk-3' } },
      { error: 'other_reason', field: null, message: 'simulated', messageId: 'bulk-4', payload: good(4) },
    ]);
    // bulk-2 already arrived by another path: it counts as a duplicate, not a second copy.
    await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(ws.writeKey) }, payload: { batch: [good(2)] } });

    const res = await call('POST', `/admin/workspaces/bulk/quarantine/replay`, { reason: 'rate_limited' });
    expect(res.statusCode).toBe(200);
    const result = res.json();
    expect(result).toMatchObject({ attempted: 3, replayed: 2, duplicates: 1 });
    expect(result.failed).toEqual([{ id: expect.any(String), error: 'missing_identity', field: 'userId', message: 'userId or anonymousId is required' }]);

    const { rows } = await t.db.query<{ message_id: string }>('select message_id from events where workspace_id = $1 order by message_id', [ws.workspace.id]);
    expect(rows.map((row) => row.message_id)).toEqual(['bulk-1', 'bulk-2']);
    const statuses = await t.db.query<{ message_id: string; status: string; reason: string }>(
      'select message_id, status, reason from quarantine where workspace_id = $1 order by message_id',
      [ws.workspace.id],
    );
    expect(statuses.rows).toEqual([
      { message_id: 'bulk-1', status: 'replayed', reason: 'rate_limited' },
      { message_id: 'bulk-2', status: 'replayed', reason: 'rate_limited' },
      { message_id: 'bulk-3', status: 'open', reason: 'missing_identity' },
      { message_id: 'bulk-4', status: 'open', reason: 'other_reason' },
    ]);
    // The still-invalid item now has its current reason, so nothing is left under the old one.
    expect((await call('POST', `/admin/workspaces/bulk/quarantine/replay`, { reason: 'rate_limited' })).json()).toMatchObject({ attempted: 0 });
    const invalid = await call('POST', `/admin/workspaces/bulk/quarantine/replay`, { limit: 5000 });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ field: 'limit' });
  });
});
