import { registerPersonalData } from '../privacy/registry.ts';

/**
 * Decisions taken for a person, their sticky assignments (subject = profile id or
 * 'anonymous:<id>') and their item history for recommendations. A running server's decide cache
 * may still hold the profile's view until its next refresh; it holds no identifiers.
 */
const subjects = (s: { profileIds: string[]; values: string[] }) => [...s.profileIds, ...s.values.map((value) => `anonymous:${value}`)];

registerPersonalData({
  name: 'decisions',
  export: async (db, s) =>
    (
      await db.query(
        `select placement_id, content_key, policy, variant, holdout, decided_at, impression_at, clicked_at, converted_at
           from decisions where workspace_id = $1 and (profile_id = any($2::uuid[]) or subject = any($3::text[])) order by decided_at`,
        [s.workspaceId, s.profileIds, subjects(s)],
      )
    ).rows,
  erase: async (db, s) =>
    (await db.query(`delete from decisions where workspace_id = $1 and (profile_id = any($2::uuid[]) or subject = any($3::text[]))`, [s.workspaceId, s.profileIds, subjects(s)])).rowCount ?? 0,
});

registerPersonalData({
  name: 'decision_assignments',
  export: async (db, s) =>
    (await db.query(`select placement_id, content_key, assigned_at from decision_assignments where workspace_id = $1 and subject = any($2::text[])`, [s.workspaceId, subjects(s)])).rows,
  erase: async (db, s) => (await db.query(`delete from decision_assignments where workspace_id = $1 and subject = any($2::text[])`, [s.workspaceId, subjects(s)])).rowCount ?? 0,
});

registerPersonalData({
  name: 'decision_profile_items',
  export: async (db, s) =>
    (await db.query(`select item_id, weight, bought, last_at from decision_profile_items where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rows,
  erase: async (db, s) =>
    (await db.query(`delete from decision_profile_items where workspace_id = $1 and profile_id = any($2::uuid[])`, [s.workspaceId, s.profileIds])).rowCount ?? 0,
});
