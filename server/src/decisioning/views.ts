import { forEachRow, type Db, type Queryable } from '../storage/database.ts';
import type { ProfileView } from './policy.ts';

/*
 * What decide reads of a profile, loaded in bulk: traits, live segment memberships (by key),
 * identifier types and consents — the facts segment-language eligibility can use without events.
 *
 * A warmed cache holds a view per profile (a million of them), so a view is kept small: its
 * membership set, identifier-type set and consent map are shared by every view with the same
 * contents (ViewInterner), and short text values are one string each; what is left per profile is
 * the view and its traits object. Views are never changed in place: a changed profile gets a new
 * view (runtime.ts followChanges), so sharing is safe.
 */

interface MutableView {
  profileId: string;
  traits: Record<string, unknown>;
  identifierTypes: Set<string>;
  consents: Map<string, boolean>;
  memberships: Set<string>;
}

function emptyView(profileId: string): MutableView {
  return { profileId, traits: {}, identifierTypes: new Set(), consents: new Map(), memberships: new Set() };
}

/** Shares equal sets, maps and short strings between views. Bounded: past the limits, values are kept unshared. */
export interface ViewInterner {
  sets: Map<string, Set<string>>;
  consents: Map<string, Map<string, boolean>>;
  strings: Map<string, string>;
}

const MAX_SHARED_SETS = 50_000;
const MAX_SHARED_STRINGS = 200_000;
const MAX_SHARED_STRING_LENGTH = 64;

export function createViewInterner(): ViewInterner {
  return { sets: new Map(), consents: new Map(), strings: new Map() };
}

const EMPTY_SET_KEY = '';

function sharedSet(interner: ViewInterner, kind: string, set: Set<string>): Set<string> {
  const key = set.size === 0 ? `${kind}${EMPTY_SET_KEY}` : `${kind}\u0000${[...set].sort().join('\u0000')}`;
  const hit = interner.sets.get(key);
  if (hit) return hit;
  if (interner.sets.size < MAX_SHARED_SETS) interner.sets.set(key, set);
  return set;
}

function sharedConsents(interner: ViewInterner, consents: Map<string, boolean>): Map<string, boolean> {
  const key = [...consents].map(([category, granted]) => `${category}\u0001${granted ? 1 : 0}`).sort().join('\u0000');
  const hit = interner.consents.get(key);
  if (hit) return hit;
  if (interner.consents.size < MAX_SHARED_SETS) interner.consents.set(key, consents);
  return consents;
}

function sharedValue(interner: ViewInterner, value: unknown): unknown {
  if (typeof value !== 'string' || value.length > MAX_SHARED_STRING_LENGTH) return value;
  const hit = interner.strings.get(value);
  if (hit !== undefined) return hit;
  if (interner.strings.size < MAX_SHARED_STRINGS) interner.strings.set(value, value);
  return value;
}

/**
 * Views of the given live profiles (unknown ids get an empty view). Index probes per id: each
 * lateral is fenced with `offset 0` so it stays a probe. Unfenced, with no statistics on
 * workspace_id the planner flattened the membership lateral into a hash join over every
 * membership of the workspace (760 ms for 30 profiles at 1M, ~2.6M memberships, at every poll of
 * the change follower; 0.4 ms fenced).
 */
export async function loadViews(
  db: Queryable,
  workspaceId: string,
  profileIds: readonly string[],
  interner: ViewInterner = createViewInterner(),
): Promise<Map<string, ProfileView>> {
  const views = new Map(profileIds.map((id) => [id, emptyView(id)]));
  if (profileIds.length === 0) return views;
  const [traits, memberships, identifiers, consents] = await Promise.all([
    db.query<{ profile_id: string; key: string; value: unknown }>(
      `select t.profile_id, t.key, t.value from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, key, value from profile_traits where workspace_id = $1 and profile_id = p.id offset 0) t`,
      [workspaceId, profileIds],
    ),
    db.query<{ profile_id: string; key: string }>(
      `select m.profile_id, m.key from unnest($2::uuid[]) as p(id)
         cross join lateral (select sm.profile_id, s.key from segment_memberships sm
                               join segments s on s.workspace_id = sm.workspace_id and s.id = sm.segment_id and s.status <> 'archived'
                              where sm.workspace_id = $1 and sm.profile_id = p.id offset 0) m`,
      [workspaceId, profileIds],
    ),
    db.query<{ profile_id: string; type: string }>(
      `select distinct i.profile_id, i.type from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, type from profile_identifiers where workspace_id = $1 and profile_id = p.id and unbound_at is null offset 0) i`,
      [workspaceId, profileIds],
    ),
    db.query<{ profile_id: string; category: string; granted: boolean }>(
      `select c.profile_id, c.category, c.granted from unnest($2::uuid[]) as p(id)
         cross join lateral (select profile_id, category, granted from profile_consents where workspace_id = $1 and profile_id = p.id offset 0) c`,
      [workspaceId, profileIds],
    ),
  ]);
  const text = (value: string) => sharedValue(interner, value) as string;
  for (const row of traits.rows) views.get(row.profile_id)!.traits[text(row.key)] = sharedValue(interner, row.value);
  for (const row of memberships.rows) views.get(row.profile_id)!.memberships.add(text(row.key));
  for (const row of identifiers.rows) views.get(row.profile_id)!.identifierTypes.add(text(row.type));
  for (const row of consents.rows) views.get(row.profile_id)!.consents.set(text(row.category), row.granted);
  return shareSets(views, interner);
}

function shareSets(views: Map<string, MutableView>, interner: ViewInterner): Map<string, ProfileView> {
  for (const view of views.values()) {
    view.memberships = sharedSet(interner, 'm', view.memberships);
    view.identifierTypes = sharedSet(interner, 'i', view.identifierTypes);
    view.consents = sharedConsents(interner, view.consents);
  }
  return views;
}

/**
 * Views of up to `max` live profiles of a workspace (cache warm-up), each table read once by a
 * sequential scan in one repeatable-read snapshot. Probing per profile id cost a random heap page
 * per trait, membership and identifier row: at 1,000,000 profiles the warm-up read ~2 pages per
 * profile from disk per table and had not finished after 10 minutes. The user and anonymous ids
 * apps decide by are handed to `onIdentifier` as they are read.
 */
export async function loadWorkspaceViews(
  db: Db,
  workspaceId: string,
  max: number,
  interner: ViewInterner,
  onIdentifier: (key: string, profileId: string) => void,
): Promise<Map<string, ProfileView>> {
  const client = await db.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const views = new Map<string, MutableView>();
    await forEachRow<{ id: string }>(client, 'select id from profiles where workspace_id = $1 and merged_into is null', [workspaceId], (row) => {
      if (views.size < max) views.set(row.id, emptyView(row.id));
    });
    const text = (value: string) => sharedValue(interner, value) as string;
    await forEachRow<{ profile_id: string; key: string; value: unknown }>(
      client,
      'select profile_id, key, value from profile_traits where workspace_id = $1',
      [workspaceId],
      (row) => {
        const view = views.get(row.profile_id);
        if (view) view.traits[text(row.key)] = sharedValue(interner, row.value);
      },
    );
    await forEachRow<{ profile_id: string; key: string }>(
      client,
      `select m.profile_id, s.key from segment_memberships m
         join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id and s.status <> 'archived'
        where m.workspace_id = $1`,
      [workspaceId],
      (row) => views.get(row.profile_id)?.memberships.add(text(row.key)),
    );
    await forEachRow<{ profile_id: string; type: string; value: string }>(
      client,
      'select profile_id, type, value from profile_identifiers where workspace_id = $1 and unbound_at is null',
      [workspaceId],
      (row) => {
        const view = views.get(row.profile_id);
        if (!view) return;
        view.identifierTypes.add(text(row.type));
        // The view's id string, not the row's copy of it: one string per profile in memory.
        if (row.type === 'user_id' || row.type === 'anonymous_id') onIdentifier(`${row.type}:${row.value}`, view.profileId);
      },
    );
    await forEachRow<{ profile_id: string; category: string; granted: boolean }>(
      client,
      'select profile_id, category, granted from profile_consents where workspace_id = $1',
      [workspaceId],
      (row) => views.get(row.profile_id)?.consents.set(text(row.category), row.granted),
    );
    await client.query('commit');
    return shareSets(views, interner);
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

