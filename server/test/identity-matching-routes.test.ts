import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveQueuedEvents } from '../src/identity/resolver.ts';
import { ADMIN_TOKEN, basicAuth, startTestApp, type TestApp } from './support/app.ts';

describe('identity admin routes: matching runs, review queue, operator merges', () => {
  let t: TestApp;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const profiles: Record<string, string> = {};

  beforeAll(async () => {
    t = await startTestApp();
    await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: {
        batch: ['a', 'b', 'c', 'd', 'e'].map((id) => ({ type: 'identify', anonymousId: `row-${id}`, traits: { name: `Person ${id}` }, messageId: `m-${id}` })),
      },
    });
    while ((await resolveQueuedEvents(t.db, t.workspace.id)) > 0);
    const { rows } = await t.db.query(`select value, profile_id from profile_identifiers where workspace_id = $1`, [t.workspace.id]);
    for (const row of rows) profiles[row.value] = row.profile_id;
    const pair = (x: string, y: string) => [profiles[x], profiles[y]].sort();
    for (const [x, y] of [['row-a', 'row-b'], ['row-c', 'row-d']]) {
      const [a, b] = pair(x!, y!);
      await t.db.query(
        `insert into match_candidates (workspace_id, profile_a, profile_b, probability, weight, levels, status) values ($1, $2, $3, 0.8, 4.2, '{"givenName": 3}', 'pending')`,
        [t.workspace.id, a, b],
      );
    }
  });
  afterAll(async () => t.close());

  it('needs the admin token', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/admin/workspaces/acme/identity/match-candidates` });
    expect(res.statusCode).toBe(401);
  });

  it('queues a matching run as a worker job, once per workspace at a time', async () => {
    const run = () =>
      t.app.inject({ method: 'POST', url: '/admin/workspaces/acme/identity/matching/runs', headers: admin, payload: { thresholds: { autoMerge: 0.99, review: 0.6 } } });
    const first = await run();
    expect(first.statusCode).toBe(202);
    await run();
    const { rows } = await t.db.query(
      `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id where k.identifier = 'identity.match'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].payload).toEqual({ workspaceId: t.workspace.id, thresholds: { autoMerge: 0.99, review: 0.6 } });
    const bad = await t.app.inject({ method: 'POST', url: '/admin/workspaces/acme/identity/matching/runs', headers: admin, payload: { thresholds: { autoMerge: 2, review: 0.5 } } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toBe('thresholds.autoMerge');
  });

  it('lists pending pairs and applies approve and reject', async () => {
    const list = await t.app.inject({ method: 'GET', url: '/admin/workspaces/acme/identity/match-candidates?status=pending', headers: admin });
    expect(list.statusCode).toBe(200);
    const items = list.json().items as Array<{ id: string; profileA: string; profileB: string; levels: Record<string, number> }>;
    expect(items).toHaveLength(2);
    expect(items[0]!.levels).toEqual({ givenName: 3 });
    const ab = items.find((i) => [i.profileA, i.profileB].includes(profiles['row-a']!))!;
    const cd = items.find((i) => i !== ab)!;

    const approved = await t.app.inject({ method: 'POST', url: `/admin/workspaces/acme/identity/match-candidates/${ab.id}/approve`, headers: admin });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().status).toBe('approved');
    const { rows } = await t.db.query(
      `select count(distinct profile_id) as n from profile_identifiers where workspace_id = $1 and value in ('row-a', 'row-b') and unbound_at is null`,
      [t.workspace.id],
    );
    expect(Number(rows[0].n)).toBe(1);

    const rejected = await t.app.inject({ method: 'POST', url: `/admin/workspaces/acme/identity/match-candidates/${cd.id}/reject`, headers: admin });
    expect(rejected.json().status).toBe('rejected');
    const twice = await t.app.inject({ method: 'POST', url: `/admin/workspaces/acme/identity/match-candidates/${cd.id}/approve`, headers: admin });
    expect(twice.statusCode).toBe(409);
    const missing = await t.app.inject({ method: 'POST', url: `/admin/workspaces/acme/identity/match-candidates/00000000-0000-4000-8000-000000000000/approve`, headers: admin });
    expect(missing.statusCode).toBe(404);
  });

  it('merges profiles by hand and logs it as manual', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/admin/workspaces/acme/identity/merges',
      headers: admin,
      payload: { profileIds: [profiles['row-d'], profiles['row-e']] },
    });
    expect(res.statusCode).toBe(200);
    const { rows } = await t.db.query(`select kind from identity_merges where workspace_id = $1 and id = $2`, [t.workspace.id, res.json().mergeId]);
    expect(rows).toEqual([{ kind: 'manual' }]);
    const tooFew = await t.app.inject({ method: 'POST', url: '/admin/workspaces/acme/identity/merges', headers: admin, payload: { profileIds: [profiles['row-a']] } });
    expect(tooFew.statusCode).toBe(400);
  });
});
