import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeModelTraits } from '../src/models/traits.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

/**
 * writeModelTraits reads the stored values a page at a time in profile order. With pages of a
 * few rows (profiles straddle page ends) a run must write exactly what a one-page diff would:
 * new values, changed values, removals of profiles no longer scored, nothing for unchanged ones,
 * and never a value the model does not own. Real PostgreSQL.
 */
describe('model traits written page by page', () => {
  let t: TestDatabase;
  let workspaceId: string;
  const ids = Array.from({ length: 40 }, (_, i) => `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`);
  const keys = ['m_score', 'm_decile'];

  beforeAll(async () => {
    t = await createTestDatabase();
    workspaceId = (await createWorkspace(t.db, { slug: 'paging', name: 'Paging' })).id;
    await t.db.query(`insert into profiles (workspace_id, id, first_seen, last_seen) select $1, id, now(), now() from unnest($2::uuid[]) id`, [workspaceId, ids]);
    // Profile 5 has an m_score that an event set: not the model's, never touched.
    await t.db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at) values ($1, $2, 'm_score', '"manual"', 'event', 'crm', 'x', now())`,
      [workspaceId, ids[4]],
    );
  });
  afterAll(async () => t.drop());

  const stored = async () => {
    const { rows } = await t.db.query<{ profile_id: string; key: string; value: unknown }>(
      `select profile_id, key, value from profile_traits where workspace_id = $1 and key = any($2::text[]) order by profile_id, key`,
      [workspaceId, keys],
    );
    return rows.map((row) => `${row.profile_id.slice(-2)} ${row.key}=${JSON.stringify(row.value)}`);
  };
  const history = async () => Number((await t.db.query<{ n: string }>(`select count(*) as n from profile_trait_history where workspace_id = $1 and reason = 'computed'`, [workspaceId])).rows[0]!.n);

  it('writes, changes and removes exactly what differs, across page ends', async () => {
    const at = new Date();
    // Run 1: every profile scored (two keys each).
    const first = new Map(ids.map((id, i) => [id, { m_score: i / 10, m_decile: (i % 10) + 1 }]));
    expect(await writeModelTraits(t.db, workspaceId, 'm', keys, first, { at, readPage: 3 })).toBe(40);
    const afterFirst = await stored();
    // 39 profiles × 2 keys the model owns, plus profile 5's own m_score and the model's m_decile.
    expect(afterFirst).toHaveLength(80);
    expect(afterFirst).toContain('05 m_score="manual"');
    expect(afterFirst).toContain('05 m_decile=5');
    expect(afterFirst).toContain('40 m_score=3.9');
    const writtenFirst = await history();
    expect(writtenFirst).toBe(79);

    // Run 2: profiles 1–10 unchanged, 11–20 a new score, 21–40 no longer scored (removed).
    const second = new Map(ids.slice(0, 20).map((id, i) => [id, { m_score: i < 10 ? i / 10 : 100 + i, m_decile: (i % 10) + 1 }]));
    expect(await writeModelTraits(t.db, workspaceId, 'm', keys, second, { at, readPage: 5 })).toBe(30);
    const afterSecond = await stored();
    expect(afterSecond).toHaveLength(40);
    expect(afterSecond).toContain('01 m_score=0');
    expect(afterSecond).toContain('15 m_score=114');
    expect(afterSecond).toContain('05 m_score="manual"');
    expect(afterSecond.some((row) => row.startsWith('21 '))).toBe(false);
    // 10 changed scores + 20 profiles × 2 removed keys.
    expect((await history()) - writtenFirst).toBe(50);

    // Run 3, the same values with pages of exactly one profile: nothing changes.
    expect(await writeModelTraits(t.db, workspaceId, 'm', keys, second, { at, readPage: 2 })).toBe(0);
    expect(await stored()).toEqual(afterSecond);
  });

  it('refuses a page smaller than one profile', async () => {
    await expect(writeModelTraits(t.db, workspaceId, 'm', keys, new Map(), { at: new Date(), readPage: 1 })).rejects.toThrow(/page of 1 rows cannot hold one profile's 2 keys/);
  });
});
