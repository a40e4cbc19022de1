import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecisioning } from '../src/decisioning/runtime.ts';
import { createPlacement } from '../src/decisioning/store.ts';
import { createViewInterner, loadViews, loadWorkspaceViews } from '../src/decisioning/views.ts';
import { createSegment } from '../src/segments/lifecycle.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/**
 * The decide cache at scale: views share their sets, a known identifier past its TTL is answered
 * from memory and re-read in the background, and an outcome for a decision still in the
 * write-behind buffer stores that decision alone. Real PostgreSQL; background loops off so each
 * step is driven by hand.
 */
describe('decide cache', () => {
  let t: TestDatabase;
  let workspaceId: string;
  const ids = ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003'];

  beforeAll(async () => {
    t = await createTestDatabase();
    workspaceId = (await createWorkspace(t.db, { slug: 'cache', name: 'Cache' })).id;
    await t.db.query(`insert into profiles (workspace_id, id, first_seen, last_seen) select $1, id, now(), now() from unnest($2::uuid[]) id`, [workspaceId, ids]);
    await t.db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen, linked_via)
       select $1, id, 'user_id', 'u-' || n, now(), now(), 'event' from unnest($2::uuid[]) with ordinality as x(id, n)`,
      [workspaceId, ids],
    );
    // u-1 and u-2 are gold in 上海, u-3 silver in 北京.
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       select $1, x.id, t.key, t.value, 'event', 'test', 'm', now() from unnest($2::uuid[], $3::text[], $4::text[]) as x(id, tier, city)
         cross join lateral (values ('tier', to_jsonb(x.tier)), ('city', to_jsonb(x.city))) as t(key, value)`,
      [workspaceId, ids, ['gold', 'gold', 'silver'], ['上海', '上海', '北京']],
    );
    await t.db.query(`insert into profile_consents (workspace_id, profile_id, category, granted, observed_at) values ($1, $2, 'sms', true, now()), ($1, $3, 'sms', true, now())`, [
      workspaceId,
      ids[0],
      ids[1],
    ]);
    await createSegment(t.db, workspaceId, { key: 'gold', name: 'Gold', kind: 'realtime', text: 'trait.tier = "gold"' }, new Date());
    await createPlacement(t.db, workspaceId, {
      key: 'banner',
      name: 'Banner',
      policy: 'rules',
      contents: [
        { key: 'generic', payload: { title: 'Welcome' } },
        { key: 'gold_offer', priority: 10, eligibility: 'in_segment("gold") and consent("sms")', payload: { title: 'Gold' } },
      ],
    });
  });
  afterAll(async () => t.drop());

  it('shares equal membership sets, identifier types, consents and short texts between views, and keeps each view right', async () => {
    const interner = createViewInterner();
    const views = await loadViews(t.db, workspaceId, ids, interner);
    const [one, two, three] = ids.map((id) => views.get(id)!);
    expect([...one!.memberships]).toEqual(['gold']);
    expect(one!.memberships).toBe(two!.memberships);
    expect(one!.consents).toBe(two!.consents);
    expect(one!.identifierTypes).toBe(three!.identifierTypes);
    expect(three!.memberships).not.toBe(one!.memberships);
    expect(three!.memberships.size).toBe(0);
    expect(three!.consents.size).toBe(0);
    expect(one!.consents.get('sms')).toBe(true);
    expect(one!.traits).toEqual({ tier: 'gold', city: '上海' });
    expect(three!.traits).toEqual({ tier: 'silver', city: '北京' });
    expect(one!.traits).not.toBe(two!.traits);
    // A later load with the same interner reuses the sets it made before.
    const again = await loadViews(t.db, workspaceId, [ids[1]!], interner);
    expect(again.get(ids[1]!)!.memberships).toBe(one!.memberships);
  });

  it('answers a known identifier past its TTL from memory and re-reads it in the background', async () => {
    const runtime = createDecisioning(t.db, { background: false, identifierTtlMs: 0 });
    try {
      const first = await runtime.decide(workspaceId, { placement: 'banner', profile: 'user_id:u-1' });
      expect(first.content?.key).toBe('gold_offer');
      // The identifier moves to u-3's profile (as a merge would re-point it).
      await t.db.query(`update profile_identifiers set profile_id = $2 where workspace_id = $1 and value = 'u-1'`, [workspaceId, ids[2]]);
      // Past the TTL (0 here) the request is still answered from memory: the old profile.
      const stale = await runtime.decide(workspaceId, { placement: 'banner', profile: 'user_id:u-1' });
      expect(stale.content?.key).toBe('gold_offer');
      // The background round re-reads it: u-1 is now the silver profile.
      await runtime.refresh();
      const fresh = await runtime.decide(workspaceId, { placement: 'banner', profile: 'user_id:u-1' });
      expect(fresh.content?.key).toBe('generic');
      // An identifier nobody has is not cached as a profile: still unknown after a refresh.
      expect((await runtime.decide(workspaceId, { placement: 'banner', profile: 'user_id:nobody' })).content?.key).toBe('generic');
      // A profile id past its TTL: answered, then re-read (an unknown id stays 404).
      expect((await runtime.decide(workspaceId, { placement: 'banner', profile: ids[1]! })).content?.key).toBe('gold_offer');
      expect((await runtime.decide(workspaceId, { placement: 'banner', profile: ids[1]! })).content?.key).toBe('gold_offer');
      await runtime.refresh();
      expect((await runtime.decide(workspaceId, { placement: 'banner', profile: ids[1]! })).content?.key).toBe('gold_offer');
      await expect(runtime.decide(workspaceId, { placement: 'banner', profile: '00000000-0000-4000-8000-0000000000ff' })).rejects.toMatchObject({ statusCode: 404 });
    } finally {
      await t.db.query(`update profile_identifiers set profile_id = $2 where workspace_id = $1 and value = 'u-1'`, [workspaceId, ids[0]]);
      await runtime.close();
    }
  });

  it('an outcome for a buffered decision stores that decision alone; the buffer stores the rest once', async () => {
    const runtime = createDecisioning(t.db, { background: false });
    try {
      const a = await runtime.decide(workspaceId, { placement: 'banner', profile: 'user_id:u-2' });
      const b = await runtime.decide(workspaceId, { placement: 'banner', profile: 'user_id:u-3' });
      const stored = async () =>
        (await t.db.query<{ id: string; impression: boolean }>(`select id, impression_at is not null as impression from decisions where workspace_id = $1 and id = any($2::uuid[]) order by id`, [workspaceId, [a.decisionId, b.decisionId]])).rows;
      expect(await stored()).toEqual([]);
      expect(await runtime.feedback(workspaceId, a.decisionId, 'impression')).toEqual({ recorded: true });
      expect(await stored()).toEqual([{ id: a.decisionId, impression: true }]);
      // Another workspace cannot report it.
      const other = (await createWorkspace(t.db, { slug: 'cache-other', name: 'Other' })).id;
      await expect(runtime.feedback(other, b.decisionId, 'impression')).rejects.toMatchObject({ statusCode: 404 });
      await runtime.flush();
      const after = await stored();
      expect(after).toHaveLength(2);
      // The flush's insert of `a` changed nothing: its impression is still stamped.
      expect(after.find((row) => row.id === a.decisionId)).toEqual({ id: a.decisionId, impression: true });
      expect(await runtime.feedback(workspaceId, a.decisionId, 'impression')).toEqual({ recorded: false });
      const { rows } = await t.db.query<{ impressions: string }>(
        `select s.impressions from decision_arm_stats s join decision_placements p on p.id = s.placement_id where p.key = 'banner' and s.content_key = $1`,
        [a.content!.key],
      );
      expect(Number(rows[0]!.impressions)).toBe(1);
    } finally {
      await runtime.close();
    }
  });

  it('warm-up reads the whole workspace in one pass with the same views as the per-profile read, live profiles only, up to the limit', async () => {
    const merged = '00000000-0000-4000-8000-000000000009';
    await t.db.query(`insert into profiles (workspace_id, id, first_seen, last_seen, merged_into, merged_at) values ($1, $2, now(), now(), $3, now())`, [workspaceId, merged, ids[0]]);
    await t.db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen, linked_via) values
         ($1, $2, 'anonymous_id', 'anon-1', now(), now(), 'event'), ($1, $2, 'email', 'tok', now(), now(), 'event')`,
      [workspaceId, ids[0]],
    );
    try {
      const identifiers = new Map<string, string>();
      const all = await loadWorkspaceViews(t.db, workspaceId, 1_000_000, createViewInterner(), (key, profileId) => identifiers.set(key, profileId));
      const probed = await loadViews(t.db, workspaceId, ids, createViewInterner());
      expect([...all.keys()].sort()).toEqual([...ids].sort());
      for (const id of ids) expect(all.get(id)).toEqual(probed.get(id));
      expect([...all.get(ids[0]!)!.identifierTypes].sort()).toEqual(['anonymous_id', 'email', 'user_id']);
      // Only the ids apps decide by; the email (a PII token) is not an identifier key.
      expect(Object.fromEntries(identifiers)).toEqual({ 'user_id:u-1': ids[0], 'user_id:u-2': ids[1], 'user_id:u-3': ids[2], 'anonymous_id:anon-1': ids[0] });
      const two = await loadWorkspaceViews(t.db, workspaceId, 2, createViewInterner(), () => undefined);
      expect(two.size).toBe(2);
    } finally {
      await t.db.query(`delete from profile_identifiers where workspace_id = $1 and value in ('anon-1', 'tok')`, [workspaceId]);
      await t.db.query(`delete from profiles where workspace_id = $1 and id = $2`, [workspaceId, merged]);
    }
  });
});
