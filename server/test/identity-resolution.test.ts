import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { openPii } from '../src/privacy/pii-codec.ts';
import { createSource } from '../src/workspaces/store.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

async function send(t: TestApp, writeKey: string, batch: unknown[]) {
  const res = await t.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basicAuth(writeKey) }, payload: { batch } });
  expect(res.statusCode).toBe(200);
  expect(res.json().rejected).toEqual([]);
}

async function drain(t: TestApp) {
  while ((await resolveQueuedEvents(t.db, t.workspace.id, 2)) > 0);
}

describe('identity resolution: a cross-channel story', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('ends in one profile holding every identifier and the whole timeline', async () => {
    const ws = t.workspace.id;
    const app = await createSource(t.db, ws, { name: 'App', kind: 'app' });
    const mini = await createSource(t.db, ws, { name: 'Mini program', kind: 'mini_program' });
    const store = await createSource(t.db, ws, { name: 'Store POS', kind: 'store' });
    const crm = await createSource(t.db, ws, { name: 'CRM', kind: 'crm_import' });

    await send(t, t.writeKey, [{ type: 'page', anonymousId: 'anon-1', name: 'Home', messageId: 'e1', timestamp: '2026-01-01T10:00:00Z' }]);
    await send(t, app.writeKey.key, [
      { type: 'identify', userId: 'u-1', anonymousId: 'anon-1', traits: { email: 'Li.Lei@Example.com', name: 'Li Lei' }, messageId: 'e2', timestamp: '2026-01-02T10:00:00Z' },
    ]);
    await send(t, mini.writeKey.key, [
      {
        type: 'identify',
        userId: 'u-1',
        traits: { phone: '13800138000' },
        context: { externalIds: [{ id: 'oOpenId123', type: 'wechat_openid', collection: 'users', encoding: 'none' }] },
        messageId: 'e3',
        timestamp: '2026-01-03T10:00:00Z',
      },
    ]);
    await send(t, store.writeKey.key, [
      {
        type: 'track',
        event: 'Order Completed',
        anonymousId: 'pos-till-7-receipt-991',
        context: { externalIds: [{ id: '+86 138 0013 8000', type: 'phone' }] },
        properties: { revenue: 299 },
        messageId: 'e4',
        timestamp: '2026-01-04T10:00:00Z',
      },
    ]);
    await send(t, crm.writeKey.key, [
      {
        type: 'identify',
        anonymousId: 'crm-row-1',
        traits: { email: ' li.lei@example.com ', name: 'LI Lei (CRM)' },
        context: { externalIds: [{ id: 'M-0001', type: 'member_id' }] },
        messageId: 'e5',
        timestamp: '2026-01-05T10:00:00Z',
      },
    ]);
    await drain(t);

    const { rows: profiles } = await t.db.query('select id from profiles where workspace_id = $1 and merged_into is null', [ws]);
    expect(profiles).toHaveLength(1);
    const profileId = profiles[0].id;
    const { rows: events } = await t.db.query(
      'select message_id, profile_id from events where workspace_id = $1 order by timestamp',
      [ws],
    );
    expect(events).toEqual(['e1', 'e2', 'e3', 'e4', 'e5'].map((m) => ({ message_id: m, profile_id: profileId })));
    const { rows: stored } = await t.db.query<{ type: string; value: string }>(
      'select type, value from profile_identifiers where workspace_id = $1 and profile_id = $2 and unbound_at is null',
      [ws, profileId],
    );
    // Email and phone are stored as keyed-hash tokens (privacy/pii-codec.ts): opened, then ordered.
    expect(stored.find((row) => row.type === 'email')?.value).toMatch(/^tph1\./);
    const identifiers = (await openPii(t.db, ws, stored)).sort((a, b) => `${a.type}:${a.value}`.localeCompare(`${b.type}:${b.value}`));
    expect(identifiers).toEqual([
      { type: 'anonymous_id', value: 'anon-1' },
      { type: 'anonymous_id', value: 'crm-row-1' },
      { type: 'anonymous_id', value: 'pos-till-7-receipt-991' },
      { type: 'email', value: 'li.lei@example.com' },
      { type: 'member_id', value: 'M-0001' },
      { type: 'phone', value: '+8613800138000' },
      { type: 'user_id', value: 'u-1' },
      { type: 'wechat_openid', value: 'oOpenId123' },
    ]);
    const { rows: storedTraits } = await t.db.query(
      'select key, value, source_name, message_id from profile_traits where workspace_id = $1 and profile_id = $2 order by key',
      [ws, profileId],
    );
    const traits = await openPii(t.db, ws, storedTraits);
    expect(traits).toContainEqual({ key: 'name', value: 'LI Lei (CRM)', source_name: 'CRM', message_id: 'e5' });
    expect(traits).toContainEqual({ key: 'phone', value: '13800138000', source_name: 'Mini program', message_id: 'e3' });
  });
});
