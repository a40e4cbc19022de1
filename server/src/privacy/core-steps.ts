import { CUT_GONE_FROM_IDENTITY_QUEUE } from '../identity/queue-take.ts';
import type { Queryable } from '../storage/database.ts';
import { registerPersonalData, type DataSubject } from './registry.ts';
import { openQuarantineRows, subjectHashes } from './sealed-payloads.ts';

/**
 * The personal data of the first modules (collection, identity, profiles, segments,
 * activation). Other modules register theirs in privacy/steps.ts.
 */

const count = async (db: Queryable, sql: string, params: unknown[]) => (await db.query(sql, params)).rowCount ?? 0;
const rows = async (db: Queryable, sql: string, params: unknown[]) => (await db.query(sql, params)).rows;
const byProfile = (s: DataSubject) => [s.workspaceId, s.profileIds];
/** Identifier values as identity's logs store them: plain ones and PII tokens. */
const storedValues = (s: DataSubject) => [...s.values, ...(s.tokens ?? [])];

registerPersonalData({
  name: 'pii_vault',
  // First, while the person's traits are still there to name their tokens: the sealed copies of
  // their identifiers' and traits' values, unless another person still holds the same value
  // (a shared name or address keeps opening for them).
  erase: (db, s) =>
    count(
      db,
      `with mine as (
         select unnest($3::text[]) as token
         union select t.value #>> '{}' from profile_traits t
          where t.workspace_id = $1 and t.profile_id = any($2::uuid[]) and jsonb_typeof(t.value) = 'string' and t.value #>> '{}' like 'tph1.%'
         union select x.v from profile_trait_history h cross join lateral (values (h.value #>> '{}'), (h.previous_value #>> '{}')) x(v)
          where h.workspace_id = $1 and h.profile_id = any($2::uuid[]) and x.v like 'tph1.%'
       ), shared as (
         select i.value as token from profile_identifiers i
          where i.workspace_id = $1 and i.value = any(array(select token from mine)) and not (i.profile_id = any($2::uuid[]))
         union select t.value #>> '{}' from profile_traits t
          where t.workspace_id = $1 and t.value = any(array(select to_jsonb(token) from mine)) and not (t.profile_id = any($2::uuid[]))
       )
       delete from pii_vault v where v.workspace_id = $1 and v.token in (select token from mine except select token from shared)`,
      [s.workspaceId, s.profileIds, s.tokens ?? []],
    ),
});

/** Tables keyed by (workspace_id, profile_id) with nothing else to it. */
function profileTable(name: string, table: string, order: string): void {
  registerPersonalData({
    name,
    export: (db, s) => rows(db, `select * from ${table} where workspace_id = $1 and profile_id = any($2::uuid[]) order by ${order}`, byProfile(s)),
    erase: (db, s) => count(db, `delete from ${table} where workspace_id = $1 and profile_id = any($2::uuid[])`, byProfile(s)),
  });
}

registerPersonalData({
  name: 'events',
  // Events resolved to the person, and events not yet resolved that carry their ids.
  export: (db, s) =>
    rows(
      db,
      `select message_id, type, event, name, category, user_id, anonymous_id, previous_id, group_id, properties, traits, context,
              timestamp, received_at
         from events
        where workspace_id = $1 and (profile_id = any($2::uuid[]) or user_id = any($3::text[]) or anonymous_id = any($3::text[]))
        order by timestamp, seq`,
      [s.workspaceId, s.profileIds, s.values],
    ),
  erase: async (db, s) => {
    const { rows: deleted } = await db.query<{ n: string }>(
      `with gone as (
         delete from events
          where workspace_id = $1
            and (profile_id = any($2::uuid[]) or user_id = any($3::text[]) or anonymous_id = any($3::text[]) or previous_id = any($3::text[]))
          returning seq, message_id
       ), ${CUT_GONE_FROM_IDENTITY_QUEUE}, ids as (
         delete from event_message_ids m using gone where m.workspace_id = $1 and m.message_id = gone.message_id
       )
       select count(*) as n from gone`,
      [s.workspaceId, s.profileIds, s.values],
    );
    return Number(deleted[0]?.n ?? 0);
  },
});

registerPersonalData({
  name: 'quarantine',
  // Items refused at collection: sealed payloads are found by keyed hashes of their string values
  // (privacy/sealed-payloads.ts), plain ones from before encryption by their text.
  export: async (db, s) => {
    const found = await db.query<{ id: string; endpoint: string; reason: string; payload: string; received_at: Date }>(
      `select id, endpoint, reason, payload, received_at from quarantine
        where workspace_id = $1 and (subject_hashes && $3::bytea[] or exists (select 1 from unnest($2::text[]) v where position(v in payload) > 0))
        order by received_at, id`,
      [s.workspaceId, s.values, await subjectHashes(db, s.workspaceId, s.values)],
    );
    return openQuarantineRows(db, s.workspaceId, found.rows);
  },
  erase: async (db, s) =>
    count(
      db,
      `delete from quarantine
        where workspace_id = $1 and (subject_hashes && $3::bytea[] or exists (select 1 from unnest($2::text[]) v where position(v in payload) > 0))`,
      [s.workspaceId, s.values, await subjectHashes(db, s.workspaceId, s.values)],
    ),
});

profileTable('profile_traits', 'profile_traits', 'key');
profileTable('profile_trait_history', 'profile_trait_history', 'id');
profileTable('profile_consents', 'profile_consents', 'category');
profileTable('segment_transitions', 'segment_transitions', 'id');
profileTable('segment_queue', 'segment_queue', 'profile_id');
profileTable('segment_rechecks', 'segment_rechecks', 'profile_id');

registerPersonalData({
  name: 'segment_memberships',
  export: (db, s) =>
    rows(
      db,
      `select sg.key as segment, m.entered_at from segment_memberships m join segments sg on sg.workspace_id = m.workspace_id and sg.id = m.segment_id
        where m.workspace_id = $1 and m.profile_id = any($2::uuid[]) order by sg.key`,
      byProfile(s),
    ),
  // Member counts stay right: each segment loses the memberships removed.
  erase: async (db, s) => {
    const { rows: counted } = await db.query<{ n: string }>(
      `with gone as (
         delete from segment_memberships where workspace_id = $1 and profile_id = any($2::uuid[]) returning segment_id
       ), counts as (
         update segments sg set member_count = greatest(0, sg.member_count - c.n)
           from (select segment_id, count(*) as n from gone group by segment_id) c
          where sg.workspace_id = $1 and sg.id = c.segment_id
       )
       select count(*) as n from gone`,
      byProfile(s),
    );
    return Number(counted[0]?.n ?? 0);
  },
});

registerPersonalData({
  name: 'identity_history',
  export: async (db, s) => ({
    merges: await rows(
      db,
      `select kind, survivor_id, absorbed_ids, created_at from identity_merges
        where workspace_id = $1 and (survivor_id = any($2::uuid[]) or absorbed_ids && $2::uuid[])`,
      byProfile(s),
    ),
    refusals: await rows(
      db,
      `select identifier_type, identifier_value, reason, created_at from identity_refusals
        where workspace_id = $1 and (profile_id = any($2::uuid[]) or identifier_value = any($3::text[]))`,
      [s.workspaceId, s.profileIds, storedValues(s)],
    ),
  }),
  erase: async (db, s) =>
    (await count(
      db,
      `delete from identity_merges where workspace_id = $1
          and (survivor_id = any($2::uuid[]) or absorbed_ids && $2::uuid[] or cause_identifier_value = any($3::text[]))`,
      [s.workspaceId, s.profileIds, storedValues(s)],
    )) +
    (await count(db, `delete from identity_refusals where workspace_id = $1 and (profile_id = any($2::uuid[]) or identifier_value = any($3::text[]))`, [
      s.workspaceId,
      s.profileIds,
      storedValues(s),
    ])) +
    (await count(db, `delete from identity_splits where workspace_id = $1 and (profile_a = any($2::uuid[]) or profile_b = any($2::uuid[]))`, byProfile(s))) +
    (await count(db, `delete from match_candidates where workspace_id = $1 and (profile_a = any($2::uuid[]) or profile_b = any($2::uuid[]))`, byProfile(s))),
});

registerPersonalData({
  name: 'destination_payloads',
  // Batches waiting for (or dead at) a destination hold other people too: the person is blanked out of them.
  erase: async (db, s) => {
    let changed = 0;
    for (const value of [...storedValues(s), ...s.profileIds]) {
      changed += await count(
        db,
        `update destination_dead_letters set payload = replace(payload::text, $2, '[erased]')::json
          where workspace_id = $1 and position($2 in payload::text) > 0`,
        [s.workspaceId, value],
      );
      changed += await count(
        db,
        `update destination_segments set pending_payload = replace(pending_payload::text, $2, '[erased]')::json
          where workspace_id = $1 and pending_payload is not null and position($2 in pending_payload::text) > 0`,
        [s.workspaceId, value],
      );
    }
    return changed;
  },
});

registerPersonalData({
  name: 'profile_identifiers',
  phase: 'profile',
  export: (db, s) =>
    rows(
      db,
      `select type, value, first_seen, last_seen, linked_via, bound_at, unbound_at from profile_identifiers
        where workspace_id = $1 and profile_id = any($2::uuid[]) order by type, value`,
      byProfile(s),
    ),
  erase: (db, s) => count(db, 'delete from profile_identifiers where workspace_id = $1 and profile_id = any($2::uuid[])', byProfile(s)),
});

registerPersonalData({
  name: 'profiles',
  phase: 'profile',
  export: (db, s) => rows(db, 'select id, created_at, first_seen, last_seen, merged_into, merged_at from profiles where workspace_id = $1 and id = any($2::uuid[])', byProfile(s)),
  erase: (db, s) => count(db, 'delete from profiles where workspace_id = $1 and id = any($2::uuid[])', byProfile(s)),
});
