import type { Queryable } from '../storage/database.ts';
import type { ProfileView } from './policy.ts';

/*
 * What decide reads of a profile, loaded in bulk: traits, live segment memberships (by key),
 * identifier types and consents — the facts segment-language eligibility can use without events.
 */

function emptyView(profileId: string): { profileId: string; traits: Record<string, unknown>; identifierTypes: Set<string>; consents: Map<string, boolean>; memberships: Set<string> } {
  return { profileId, traits: {}, identifierTypes: new Set(), consents: new Map(), memberships: new Set() };
}

/** Views of the given live profiles (unknown ids get an empty view). Primary-key probes per id. */
export async function loadViews(db: Queryable, workspaceId: string, profileIds: readonly string[]): Promise<Map<string, ProfileView>> {
  const views = new Map(profileIds.map((id) => [id, emptyView(id)]));
  if (profileIds.length === 0) return views;
  const [traits, memberships, identifiers, consents] = await Promise.all([
    db.query<{ profile_id: string; key: string; value: unknown }>(
      `select t.profile_id, t.key, t.value from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, key, value from profile_traits where workspace_id = $1 and profile_id = p.id) t`,
      [workspaceId, profileIds],
    ),
    db.query<{ profile_id: string; key: string }>(
      `select m.profile_id, s.key from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, segment_id from segment_memberships where workspace_id = $1 and profile_id = p.id) m
         join segments s on s.workspace_id = $1 and s.id = m.segment_id and s.status <> 'archived'`,
      [workspaceId, profileIds],
    ),
    db.query<{ profile_id: string; type: string }>(
      `select distinct i.profile_id, i.type from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, type from profile_identifiers where workspace_id = $1 and profile_id = p.id and unbound_at is null) i`,
      [workspaceId, profileIds],
    ),
    db.query<{ profile_id: string; category: string; granted: boolean }>(
      `select c.profile_id, c.category, c.granted from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, category, granted from profile_consents where workspace_id = $1 and profile_id = p.id) c`,
      [workspaceId, profileIds],
    ),
  ]);
  for (const row of traits.rows) views.get(row.profile_id)!.traits[row.key] = row.value;
  for (const row of memberships.rows) views.get(row.profile_id)!.memberships.add(row.key);
  for (const row of identifiers.rows) views.get(row.profile_id)!.identifierTypes.add(row.type);
  for (const row of consents.rows) views.get(row.profile_id)!.consents.set(row.category, row.granted);
  return views;
}

/** Live profile ids of a workspace after `after` in id order, a page at a time (cache warm-up). */
export async function liveProfilePage(db: Queryable, workspaceId: string, after: string | null, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `select id from profiles where workspace_id = $1 and merged_into is null and ($2::uuid is null or id > $2) order by id limit $3`,
    [workspaceId, after, limit],
  );
  return rows.map((row) => row.id);
}
