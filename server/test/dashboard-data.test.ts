import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drain, profileUrl, reader, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/** What the dashboard's overview, segment list and profile 360 read beyond the core APIs. */
describe('dashboard data: message and journey numbers, segment trends, profile journeys and consent', () => {
  let t: TestApp;
  let get: ReturnType<typeof reader>;
  let profileId: string;
  const now = Date.now();
  const iso = (msAgo: number) => new Date(now - msAgo).toISOString();

  beforeAll(async () => {
    t = await startTestApp();
    get = reader(t, await serverKey(t));
    await send(t, t.writeKey, [
      {
        type: 'identify',
        userId: 'u-1',
        messageId: 'd-1',
        timestamp: iso(60_000),
        traits: { city: '上海' },
        context: { consent: { categoryPreferences: { email: true, sms: false } } },
      },
      { type: 'identify', userId: 'u-2', messageId: 'd-2', timestamp: iso(50_000), traits: { city: '上海' } },
    ]);
    await drain(t);
    profileId = (await get('GET', profileUrl('user_id:u-1'))).json().id;
  });

  afterAll(async () => t?.close());

  it('the overview counts messages by the furthest status reached, and published journeys', async () => {
    const statuses = ['queued', 'sent', 'delivered', 'delivered', 'clicked', 'failed'];
    for (const [i, status] of statuses.entries()) {
      await t.db.query(
        `insert into messages (workspace_id, idempotency_key, profile_id, channel, template_key, purpose, status, due_at, created_at)
         values ($1, $2, $3, 'email', 'welcome', 'marketing', $4, now(), $5)`,
        [t.workspace.id, `m-${i}`, profileId, status, new Date(now - 3_600_000)],
      );
    }
    // One outside the range.
    await t.db.query(
      `insert into messages (workspace_id, idempotency_key, profile_id, channel, template_key, purpose, status, due_at, created_at)
       values ($1, 'm-old', $2, 'email', 'welcome', 'marketing', 'clicked', now(), $3)`,
      [t.workspace.id, profileId, new Date(now - 40 * 86_400_000)],
    );
    await t.db.query(
      `insert into journeys (workspace_id, key, name, status, draft, current_version) values
         ($1, 'welcome', 'Welcome', 'published', '{}', 1), ($1, 'winback', 'Win back', 'paused', '{}', 1), ($1, 'draft', 'Draft', 'draft', '{}', null)`,
      [t.workspace.id],
    );
    const res = await get('GET', `/v1/overview?from=${iso(7 * 86_400_000)}&to=${iso(-60_000)}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ messages: { sent: 4, delivered: 3, clicked: 1 }, activeJourneys: 1 });
  });

  it('the profile shows the journey step it is at, its consent and its computed values by owner', async () => {
    const { rows } = await t.db.query<{ id: string }>(`select id from journeys where workspace_id = $1 and key = 'welcome'`, [t.workspace.id]);
    const journeyId = rows[0]!.id;
    await t.db.query(
      `insert into journey_versions (workspace_id, journey_id, version, definition, published_at)
       values ($1, $2, 1, '{"nodes":[{"id":"entry","kind":"entry"},{"id":"wait-3d","kind":"delay"}]}', now())`,
      [t.workspace.id, journeyId],
    );
    await t.db.query(
      `insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, due_at, entry, entered_at, step_count)
       values ($1, $2, 1, $3, 'active', 'wait-3d', 'wait', $4, 'event', $5, 2),
              ($1, $2, 1, $3, 'completed', 'end', 'arrive', null, 'event', $5, 4)`,
      [t.workspace.id, journeyId, profileId, new Date(now + 3 * 86_400_000), new Date(now - 3_600_000)],
    );
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at, updated_at)
       values ($1, $2, 'churn_probability', '0.42', 'computed', 'model:churn', 'run-1', now(), now()),
              ($1, $2, 'orders_90d', '3', 'computed', 'orders_90d', 'ct-1', now(), now())`,
      [t.workspace.id, profileId],
    );
    const profile = (await get('GET', profileUrl(profileId))).json();
    expect(profile.journeys).toEqual([
      expect.objectContaining({ journeyKey: 'welcome', journeyName: 'Welcome', nodeId: 'wait-3d', nodeKind: 'delay', phase: 'wait', stepCount: 2, holdout: false }),
    ]);
    expect(profile.consent).toEqual({
      email: { granted: true, observedAt: expect.any(String) },
      sms: { granted: false, observedAt: expect.any(String) },
    });
    expect(profile.computed).toEqual({
      churn_probability: { value: 0.42, source: 'model:churn', observedAt: expect.any(String) },
      orders_90d: { value: 3, source: 'orders_90d', observedAt: expect.any(String) },
    });
    // A profile with nothing of the kind answers empty ones.
    const other = (await get('GET', profileUrl('user_id:u-2'))).json();
    expect(other).toMatchObject({ journeys: [], consent: {}, computed: {} });
  });

  it('segment trends count entries and exits per day in the database and say what changed after the range', async () => {
    const created = await get('POST', '/v1/segments', { key: 'shanghai', name: 'Shanghai', kind: 'realtime', text: 'trait.city = "上海"' });
    expect(created.statusCode, created.body).toBe(201);
    expect((await get('POST', '/v1/segments/shanghai/refresh')).statusCode).toBe(200);
    const segment = (await get('GET', '/v1/segments/shanghai')).json();
    expect(segment.memberCount).toBe(2);

    const inRange = (await get('GET', `/v1/overview/segment-trends?from=${iso(86_400_000)}&to=${iso(-60_000)}&key=shanghai`)).json();
    expect(inRange.items).toHaveLength(1);
    expect(inRange.items[0]).toMatchObject({ key: 'shanghai', members: 2, changedSince: 0 });
    expect(inRange.items[0].days.reduce((sum: number, day: { entered: number }) => sum + day.entered, 0)).toBe(2);

    // A range that ended before the members entered: nothing in it, both entries after it.
    const before = (await get('GET', `/v1/overview/segment-trends?from=${iso(3 * 86_400_000)}&to=${iso(2 * 86_400_000)}`)).json();
    expect(before.items.find((item: { key: string }) => item.key === 'shanghai')).toMatchObject({ members: 2, changedSince: 2, days: [] });

    const missing = await get('GET', `/v1/overview/segment-trends?from=${iso(86_400_000)}&to=${iso(0)}&key=nope`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ field: 'key' });
  });
});
