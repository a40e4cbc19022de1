import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRetention } from '../src/privacy/retention.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';
import { drain, serverKey } from './profiles-support.ts';

const NOW = new Date('2026-12-01T00:00:00Z');

describe('retention (real PostgreSQL)', () => {
  let t: TestApp;
  let beta: Awaited<ReturnType<TestApp['addWorkspace']>>;
  const importEvents = (writeKey: string, batch: object[]) =>
    t.app.inject({ method: 'POST', url: '/v1/import', headers: { authorization: basicAuth(writeKey) }, payload: { batch } });
  const count = async (workspaceId: string) =>
    Number((await t.db.query<{ n: string }>('select count(*) as n from events where workspace_id = $1', [workspaceId])).rows[0]!.n);

  beforeAll(async () => {
    t = await startTestApp();
    beta = await t.addWorkspace('beta');
    for (const writeKey of [t.writeKey, beta.writeKey]) {
      const response = await importEvents(writeKey, [
        { type: 'track', userId: 'old-1', event: 'Old', timestamp: '2024-01-15T00:00:00Z', messageId: 'o1' },
        { type: 'track', userId: 'old-1', event: 'Old', timestamp: '2024-02-15T00:00:00Z', messageId: 'o2' },
        { type: 'track', userId: 'recent-1', event: 'Recent', timestamp: '2026-11-20T00:00:00Z', messageId: 'r1' },
      ]);
      expect(response.statusCode).toBe(200);
    }
    await drain(t);
    await drain(t, beta.workspace.id);
  });
  afterAll(async () => t?.close());

  it('sets retention per workspace through the API, refusing nonsense with the field', async () => {
    const key = await serverKey(t);
    const put = await t.app.inject({ method: 'PUT', url: '/v1/privacy/settings', headers: { authorization: `Bearer ${key}` }, payload: { eventRetentionDays: 365, profileInactivityDays: null, requestDeadlineDays: 30 } });
    expect(put.json()).toEqual({ eventRetentionDays: 365, profileInactivityDays: null, requestDeadlineDays: 30 });
    const bad = await t.app.inject({ method: 'PUT', url: '/v1/privacy/settings', headers: { authorization: `Bearer ${key}` }, payload: { eventRetentionDays: 0, profileInactivityDays: null, requestDeadlineDays: 30 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ field: 'eventRetentionDays' });
  });

  it("deletes a workspace's old events only, and drops no partition another workspace still keeps", async () => {
    const outcome = await applyRetention(t.db, NOW);
    expect(outcome.eventsDeleted[t.workspace.id]).toBe(2);
    expect(outcome.partitionsDropped).toEqual([]);
    expect(await count(t.workspace.id)).toBe(1);
    expect(await count(beta.workspace.id)).toBe(3);
  });

  it('drops whole monthly partitions once every workspace is past them, and inactive profiles are purged', async () => {
    const betaKey = await serverKey(t, beta.workspace.id);
    await t.app.inject({ method: 'PUT', url: '/v1/privacy/settings', headers: { authorization: `Bearer ${betaKey}` }, payload: { eventRetentionDays: 400, profileInactivityDays: 300, requestDeadlineDays: 15 } });
    const outcome = await applyRetention(t.db, NOW);
    expect(outcome.partitionsDropped.sort()).toEqual(['events_y2024m01', 'events_y2024m02']);
    expect(await count(beta.workspace.id)).toBe(1);
    const tables = await t.db.query(`select 1 from pg_class where relname in ('events_y2024m01', 'events_y2024m02')`);
    expect(tables.rowCount).toBe(0);
    // beta's 'old-1' was last seen in 2024: purged with its identifiers; 'recent-1' stays.
    expect(outcome.profilesPurged[beta.workspace.id]).toBe(1);
    const ids = await t.db.query<{ value: string }>(`select value from profile_identifiers where workspace_id = $1 order by value`, [beta.workspace.id]);
    expect(ids.rows.map((row) => row.value)).toEqual(['recent-1']);
    // A late event for a dropped month is stored again (the partition is re-created).
    const late = await importEvents(beta.writeKey, [{ type: 'track', userId: 'x', event: 'Late', timestamp: '2024-01-20T00:00:00Z', messageId: 'late-1' }]);
    expect(late.json()).toMatchObject({ accepted: 1 });
  });
});
