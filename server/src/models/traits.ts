import crypto from 'node:crypto';
import { COMPUTED_TRAIT_SOURCE_KIND } from '../identity/traits.ts';
import { sameJson } from '../segments/computed/store.ts';
import { lockWorkspaceSegments } from '../segments/lock.ts';
import { enqueueSegmentEvaluation } from '../segments/queue.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { modelTraitSource } from './store.ts';

/*
 * Writing a run's scores as traits: profile_traits rows (source kind `computed`, source name
 * `model:<key>`) that segments read as trait.<key>, so `trait.rfm_group = "champions"` works
 * like any trait. Only values that changed are written, each with a profile_trait_history row
 * (reason `computed`); profiles with a change are queued for real-time segment evaluation in the
 * same transaction, so segments on the scores follow. A profile the run no longer scores loses
 * the model's traits. A value under one of the keys that the model does not own (an event's, a
 * computed trait's) is never touched.
 */

export interface TraitChange {
  profileId: string;
  key: string;
  previous: unknown;
  value: unknown;
}

/** What a run wants per profile: key → value (undefined or a missing key: the trait is removed). */
export type ModelValues = Map<string, Record<string, unknown>>;

const BATCH = 2000;

/** The changes from the stored values to `values` over the model's trait keys. Pure. */
export function traitChanges(
  values: ModelValues,
  stored: ReadonlyMap<string, ReadonlyMap<string, { value: unknown; owned: boolean }>>,
  keys: readonly string[],
): TraitChange[] {
  const changes: TraitChange[] = [];
  const profiles = new Set([...values.keys(), ...stored.keys()]);
  for (const profileId of profiles) {
    const wanted = values.get(profileId);
    const current = stored.get(profileId);
    for (const key of keys) {
      const value = wanted?.[key];
      const existing = current?.get(key);
      if (existing && !existing.owned) continue;
      if (existing === undefined && value === undefined) continue;
      if (existing && value !== undefined && sameJson(existing.value, value)) continue;
      changes.push({ profileId, key, previous: existing?.value, value });
    }
  }
  return changes;
}

export interface WriteOptions {
  at: Date;
  /** Timeline events for a profile's changes (e.g. Lifecycle Stage Changed); none by default. */
  events?: (profileId: string, changes: readonly TraitChange[]) => SystemEvent[];
  /** Stored rows read per page (default READ_PAGE; tests use small pages). */
  readPage?: number;
}

// Stored rows read per page while diffing (a page ends on a whole profile).
const READ_PAGE = 20_000;

/**
 * Writes a run's values; returns the number of profiles whose values changed. The stored values
 * are read a page at a time in profile order and diffed against the run's values for the same
 * profiles, and each page's changes written before the next is read, so a run over a million
 * profiles never holds all stored values (or all changes) at once.
 */
export async function writeModelTraits(db: Db, workspaceId: string, modelKey: string, keys: readonly string[], values: ModelValues, options: WriteOptions): Promise<number> {
  const source = modelTraitSource(modelKey);
  // Text order of canonical (lowercase) uuids is PostgreSQL's uuid order.
  const wanted = [...values.keys()].sort();
  let next = 0;
  let after: string | null = null;
  let changed = 0;
  let prepared = false;
  const pageSize = options.readPage ?? READ_PAGE;
  if (pageSize < keys.length) throw new Error(`a page of ${pageSize} rows cannot hold one profile's ${keys.length} keys`);
  for (;;) {
    const rows = await withTransaction(db, async (client) => {
      // Read in primary-key order (no sort of every stored row for each page).
      await client.query('set local enable_sort = off');
      const { rows: page } = await client.query<{ profile_id: string; key: string; value: unknown; owned: boolean }>(
        `select profile_id, key, value, (source_kind = '${COMPUTED_TRAIT_SOURCE_KIND}' and source_name = $3) as owned
           from profile_traits where workspace_id = $1 and key = any($2::text[]) and ($4::uuid is null or profile_id > $4)
          order by profile_id, key limit $5`,
        [workspaceId, keys, source, after, pageSize],
      );
      return page;
    });
    const last = rows.length === pageSize;
    let end = rows.length;
    if (last) {
      // A profile holds at most one row per key: a last profile with fewer may go on in the next page, where it is read again.
      const tail = rows[end - 1]!.profile_id;
      let count = 0;
      while (count < end && rows[end - 1 - count]!.profile_id === tail) count++;
      if (count < keys.length) end -= count;
    }
    const upTo = last ? rows[end - 1]!.profile_id : null;
    const stored = new Map<string, Map<string, { value: unknown; owned: boolean }>>();
    for (let i = 0; i < end; i++) {
      const row = rows[i]!;
      let byKey = stored.get(row.profile_id);
      if (!byKey) stored.set(row.profile_id, (byKey = new Map()));
      byKey.set(row.key, { value: row.value, owned: row.owned });
    }
    const pageValues: ModelValues = new Map();
    while (next < wanted.length && (upTo === null || wanted[next]! <= upTo)) {
      const id = wanted[next++]!;
      pageValues.set(id, values.get(id)!);
    }
    const changes = traitChanges(pageValues, stored, keys);
    if (changes.length > 0) {
      if (!prepared) {
        await prepareTransitionStorage(db, options.at);
        prepared = true;
      }
      changed += await writeChanges(db, workspaceId, source, changes, options);
    }
    if (upTo === null) return changed;
    after = upTo;
  }
}

/** Writes changes, BATCH profiles per transaction; returns the number of profiles. */
async function writeChanges(db: Db, workspaceId: string, source: string, changes: readonly TraitChange[], options: WriteOptions): Promise<number> {
  const byProfile = new Map<string, TraitChange[]>();
  for (const change of changes) {
    const list = byProfile.get(change.profileId);
    if (list) list.push(change);
    else byProfile.set(change.profileId, [change]);
  }
  const profiles = [...byProfile.keys()].sort();
  for (let start = 0; start < profiles.length; start += BATCH) {
    const batch = profiles.slice(start, start + BATCH);
    const batchChanges = batch.flatMap((id) => byProfile.get(id)!);
    await withTransaction(db, async (client) => {
      await lockWorkspaceSegments(client, workspaceId);
      const present = batchChanges.filter((c) => c.value !== undefined);
      const absent = batchChanges.filter((c) => c.value === undefined);
      const messageIds = batchChanges.map(() => `model-trait-${crypto.randomUUID()}`);
      if (present.length > 0) {
        // Only rows the model owns, or none, are written (a value events set meanwhile stays).
        await client.query(
          `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at, updated_at)
           select $1, p, k, v, '${COMPUTED_TRAIT_SOURCE_KIND}', $5, 'model-run', $6, $6
             from unnest($2::uuid[], $3::text[], $4::jsonb[]) as x(p, k, v)
             join profiles pr on pr.workspace_id = $1 and pr.id = x.p and pr.merged_into is null
           on conflict (workspace_id, profile_id, key) do update
             set value = excluded.value, observed_at = excluded.observed_at, updated_at = excluded.updated_at
             where profile_traits.source_kind = '${COMPUTED_TRAIT_SOURCE_KIND}' and profile_traits.source_name = $5`,
          [workspaceId, present.map((c) => c.profileId), present.map((c) => c.key), present.map((c) => JSON.stringify(c.value)), source, options.at],
        );
      }
      if (absent.length > 0) {
        await client.query(
          `delete from profile_traits t using unnest($2::uuid[], $3::text[]) as x(p, k)
            where t.workspace_id = $1 and t.profile_id = x.p and t.key = x.k and t.source_kind = '${COMPUTED_TRAIT_SOURCE_KIND}' and t.source_name = $4`,
          [workspaceId, absent.map((c) => c.profileId), absent.map((c) => c.key), source],
        );
      }
      const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value));
      await client.query(
        `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
         select $1, p, k, pv, coalesce(v, 'null'::jsonb), '${COMPUTED_TRAIT_SOURCE_KIND}', $6, m, $7, 'computed'
           from unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $8::text[]) as x(p, k, pv, v, m)
           join profiles pr on pr.workspace_id = $1 and pr.id = x.p`,
        [
          workspaceId,
          batchChanges.map((c) => c.profileId),
          batchChanges.map((c) => c.key),
          batchChanges.map((c) => json(c.previous)),
          batchChanges.map((c) => json(c.value)),
          source,
          options.at,
          messageIds,
        ],
      );
      if (options.events) {
        const events = batch.flatMap((id) => options.events!(id, byProfile.get(id)!));
        await insertSystemEvents(client, workspaceId, events, options.at);
      }
      await enqueueSegmentEvaluation(client, workspaceId, batch);
    });
  }
  return profiles.length;
}
