import crypto from 'node:crypto';
import { ApiError } from '../../api/errors.ts';
import { COMPUTED_TRAIT_SOURCE_KIND } from '../../identity/traits.ts';
import type { DbClient, Queryable } from '../../storage/database.ts';
import { insertSystemEvents, type SystemEvent } from '../transitions.ts';
import type { ComputedTraitDefinition } from './definition.ts';

/*
 * Computed trait definitions (computed_traits) and their values. A value is an ordinary
 * profile_traits row (source_kind 'computed', source_name = the trait's key), so the profile API
 * shows it and a segment reads it as `trait.<key>` with no special case. Every change of value is
 * a profile_trait_history row (reason 'computed') and a `Computed Trait Changed` event in the
 * profile's timeline; a value that did not change writes nothing.
 */

export type ComputedTraitStatus = 'active' | 'paused' | 'archived';
export type ComputedTraitState = 'computing' | 'ready' | 'failed';

export interface ComputedTrait {
  id: string;
  key: string;
  name: string;
  description: string | null;
  definition: ComputedTraitDefinition;
  status: ComputedTraitStatus;
  version: number;
  state: ComputedTraitState;
  computedAt: Date | null;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
}

interface ComputedTraitRow {
  id: string;
  key: string;
  name: string;
  description: string | null;
  definition: ComputedTraitDefinition;
  status: ComputedTraitStatus;
  version: number;
  state: ComputedTraitState;
  computed_at: Date | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, key, name, description, definition, status, version, state, computed_at, last_error, created_at, updated_at';

const toComputedTrait = (row: ComputedTraitRow): ComputedTrait => ({
  id: row.id,
  key: row.key,
  name: row.name,
  description: row.description,
  definition: row.definition,
  status: row.status,
  version: row.version,
  state: row.state,
  computedAt: row.computed_at,
  lastError: row.last_error,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export interface NewComputedTrait {
  key: string;
  name: string;
  description?: string | null;
  definition: ComputedTraitDefinition;
}

/**
 * Creates a definition in state `computing` (its values are written by `computeComputedTrait`).
 * A key already used by another computed trait (archived ones included: their key stays theirs),
 * or by traits that events set, is refused with 409 naming it: one key, one owner.
 */
export async function createComputedTrait(client: DbClient, workspaceId: string, input: NewComputedTrait): Promise<ComputedTrait> {
  await refuseKeyInUse(client, workspaceId, input.key);
  try {
    const { rows } = await client.query<ComputedTraitRow>(
      `insert into computed_traits (workspace_id, key, name, description, definition) values ($1, $2, $3, $4, $5) returning ${COLUMNS}`,
      [workspaceId, input.key, input.name, input.description ?? null, JSON.stringify(input.definition)],
    );
    return toComputedTrait(rows[0]!);
  } catch (error) {
    if ((error as { code?: string }).code === '23505') {
      throw new ApiError(409, 'computed_trait_exists', `A computed trait with key "${input.key}" already exists`, 'key');
    }
    throw error;
  }
}

/**
 * Why a key cannot be a new computed trait's: event-sourced values stored under it, or identify
 * calls that sent it (the event catalogue), or null when it is free. The catalogue answers from its
 * primary key; the profile_traits probe stops at the first row but reads the workspace's traits
 * when the key is unused, which a creation can afford.
 */
async function refuseKeyInUse(db: Queryable, workspaceId: string, key: string): Promise<void> {
  const { rows } = await db.query<{ stored: boolean; sent: boolean }>(
    `select exists (select 1 from profile_traits
                     where workspace_id = $1 and key = $2 and source_kind <> '${COMPUTED_TRAIT_SOURCE_KIND}') as stored,
            exists (select 1 from event_catalogue_properties
                     where workspace_id = $1 and event_type = 'identify'
                       and ((scope = 'traits' and regexp_replace(split_part(path, '.', 1), '\\[\\]$', '') = $2)
                         or (scope = 'context' and split_part(path, '.', 1) = 'traits'
                             and regexp_replace(split_part(path, '.', 2), '\\[\\]$', '') = $2))) as sent`,
    [workspaceId, key],
  );
  const { stored, sent } = rows[0]!;
  if (stored || sent) {
    throw new ApiError(
      409,
      'trait_key_in_use',
      `Trait "${key}" is already set by events (${stored ? 'profiles hold values for it' : 'identify calls have sent it'}); ` +
        'choose another key for the computed trait',
      'key',
    );
  }
}

export async function getComputedTrait(db: Queryable, workspaceId: string, key: string): Promise<ComputedTrait> {
  const { rows } = await db.query<ComputedTraitRow>(`select ${COLUMNS} from computed_traits where workspace_id = $1 and key = $2`, [
    workspaceId,
    key,
  ]);
  if (!rows[0]) throw new ApiError(404, 'not_found', `No computed trait "${key}"`, 'key');
  return toComputedTrait(rows[0]);
}

export async function getComputedTraitById(db: Queryable, workspaceId: string, id: string): Promise<ComputedTrait | null> {
  const { rows } = await db.query<ComputedTraitRow>(`select ${COLUMNS} from computed_traits where workspace_id = $1 and id = $2`, [workspaceId, id]);
  return rows[0] ? toComputedTrait(rows[0]) : null;
}

/** The workspace's computed traits by key; archived ones only when asked for by status. */
export async function listComputedTraits(db: Queryable, workspaceId: string, status?: ComputedTraitStatus): Promise<ComputedTrait[]> {
  const { rows } = await db.query<ComputedTraitRow>(
    `select ${COLUMNS} from computed_traits
      where workspace_id = $1 and (case when $2::text is null then status <> 'archived' else status = $2 end)
      order by key`,
    [workspaceId, status ?? null],
  );
  return rows.map(toComputedTrait);
}

/** The traits the real-time refresh keeps up to date: active ones, whatever their full computation's state. */
export async function loadActiveComputedTraits(db: Queryable, workspaceId: string): Promise<ComputedTrait[]> {
  const { rows } = await db.query<ComputedTraitRow>(activeComputedTraitsSql('$1'), [workspaceId]);
  return activeComputedTraitsFromRows(rows);
}

/** loadActiveComputedTraits's query, for `workspace` (SQL: a parameter or literal), to run in a caller's statement batch. */
export const activeComputedTraitsSql = (workspace: string) =>
  `select ${COLUMNS} from computed_traits where workspace_id = ${workspace} and status = 'active' order by key`;

/** The traits from the rows of activeComputedTraitsSql. */
export function activeComputedTraitsFromRows(rows: readonly unknown[]): ComputedTrait[] {
  return (rows as ComputedTraitRow[]).map(toComputedTrait);
}

export interface ComputedTraitChanges {
  name?: string;
  description?: string | null;
  definition?: ComputedTraitDefinition;
  status?: ComputedTraitStatus;
}

/**
 * Applies an edit. A new definition bumps the version; a new definition or a return to `active`
 * makes the values due for a full computation (state `computing`); `recompute` says whether the
 * caller must start one. Archiving is `archiveComputedTrait`'s.
 */
export async function updateComputedTrait(
  client: DbClient,
  workspaceId: string,
  key: string,
  changes: ComputedTraitChanges,
): Promise<{ trait: ComputedTrait; recompute: boolean }> {
  const { rows } = await client.query<ComputedTraitRow>(`select ${COLUMNS} from computed_traits where workspace_id = $1 and key = $2 for update`, [
    workspaceId,
    key,
  ]);
  if (!rows[0]) throw new ApiError(404, 'not_found', `No computed trait "${key}"`, 'key');
  const current = toComputedTrait(rows[0]);
  const definitionChanged = changes.definition !== undefined && !sameJson(changes.definition, current.definition);
  const status = changes.status ?? current.status;
  if (current.status === 'archived' && status === 'archived' && (definitionChanged || changes.name !== undefined || changes.description !== undefined)) {
    throw new ApiError(409, 'computed_trait_archived', `Computed trait "${key}" is archived; set status to active or paused to edit it`, 'status');
  }
  const recompute = status === 'active' && (definitionChanged || current.status !== 'active');
  const { rows: updated } = await client.query<ComputedTraitRow>(
    `update computed_traits
        set name = $3, description = $4, definition = $5, status = $6,
            version = version + $7::int,
            state = case when $8 then 'computing' else state end,
            last_error = case when $8 then null else last_error end,
            updated_at = now()
      where workspace_id = $1 and key = $2
      returning ${COLUMNS}`,
    [
      workspaceId,
      key,
      changes.name ?? current.name,
      changes.description === undefined ? current.description : changes.description,
      JSON.stringify(changes.definition ?? current.definition),
      status,
      definitionChanged ? 1 : 0,
      recompute,
    ],
  );
  return { trait: toComputedTrait(updated[0]!), recompute };
}

/**
 * Archives a computed trait: no longer refreshed, and its values leave every profile (one
 * statement; no per-profile history or events, since the trait itself is gone — the archive is
 * the record). The key stays reserved; setting the status back to active recomputes the values.
 */
export async function archiveComputedTrait(client: DbClient, workspaceId: string, key: string): Promise<{ trait: ComputedTrait; removed: number }> {
  const { rows } = await client.query<ComputedTraitRow>(
    `update computed_traits set status = 'archived', updated_at = now() where workspace_id = $1 and key = $2 returning ${COLUMNS}`,
    [workspaceId, key],
  );
  if (!rows[0]) throw new ApiError(404, 'not_found', `No computed trait "${key}"`, 'key');
  const { rowCount } = await client.query(
    `delete from profile_traits where workspace_id = $1 and key = $2 and source_kind = '${COMPUTED_TRAIT_SOURCE_KIND}' and source_name = $2`,
    [workspaceId, key],
  );
  return { trait: toComputedTrait(rows[0]), removed: rowCount ?? 0 };
}

/** Records the outcome of a full computation of `version` (a newer edit's computation will record its own). */
export async function markComputed(
  db: Queryable,
  workspaceId: string,
  id: string,
  version: number,
  outcome: { state: 'ready'; at: Date } | { state: 'failed'; error: string },
): Promise<void> {
  await db.query(
    `update computed_traits
        set state = $4, computed_at = coalesce($5, computed_at), last_error = $6, updated_at = now()
      where workspace_id = $1 and id = $2 and version = $3 and status = 'active'`,
    [workspaceId, id, version, outcome.state, outcome.state === 'ready' ? outcome.at : null, outcome.state === 'failed' ? outcome.error : null],
  );
}

// ---------------------------------------------------------------------------------------------
// Values

/** A computed trait's value for one profile: `undefined` when absent (the trait row is removed). */
export interface ComputedValue {
  profileId: string;
  trait: Pick<ComputedTrait, 'id' | 'key' | 'version'>;
  value: unknown;
}

export type ComputedCause = 'compute' | 'event' | 'expiry';

/** A value that differs from the stored one. */
export interface ComputedValueChange extends ComputedValue {
  previous: unknown;
}

/**
 * The current values of `keys` on the given profiles: profileId → key → value. Any row under the
 * key counts (an event-sourced value under a computed key is replaced by the computed one).
 */
export async function loadStoredValues(
  db: Queryable,
  workspaceId: string,
  profileIds: readonly string[],
  keys: readonly string[],
): Promise<Map<string, Map<string, { value: unknown; computed: boolean }>>> {
  const stored = new Map<string, Map<string, { value: unknown; computed: boolean }>>();
  if (profileIds.length === 0 || keys.length === 0) return stored;
  const { rows } = await db.query<{ profile_id: string; key: string; value: unknown; source_kind: string }>(
    `select profile_id, key, value, source_kind from profile_traits
      where workspace_id = $1 and profile_id = any($2::uuid[]) and key = any($3::text[])`,
    [workspaceId, profileIds, keys],
  );
  for (const row of rows) {
    let byKey = stored.get(row.profile_id);
    if (!byKey) stored.set(row.profile_id, (byKey = new Map()));
    byKey.set(row.key, { value: row.value, computed: row.source_kind === COMPUTED_TRAIT_SOURCE_KIND });
  }
  return stored;
}

/**
 * The values that must be written: those that differ from what is stored (JSON equality, key
 * order ignored), and computed values standing on a row events wrote. Pure.
 */
export function changedValues(
  values: readonly ComputedValue[],
  stored: ReadonlyMap<string, ReadonlyMap<string, { value: unknown; computed: boolean }>>,
): ComputedValueChange[] {
  const changes: ComputedValueChange[] = [];
  for (const entry of values) {
    const current = stored.get(entry.profileId)?.get(entry.trait.key);
    const previous = current?.value;
    if (current?.computed && sameJson(previous, entry.value)) continue;
    if (!current && entry.value === undefined) continue;
    changes.push({ ...entry, previous });
  }
  return changes;
}

/**
 * Writes changed values: the trait row (upserted, or deleted when the value is now absent), a
 * history row (a removal records JSON null as the value) and a `Computed Trait Changed` event
 * {trait, previous, value} from Touchpoint's own source (an absent side is null: a computed value
 * is never JSON null). The events partition for `at` must exist (`prepareTransitionStorage`);
 * the caller holds the workspace's segment lock.
 */
export async function writeComputedValues(
  client: DbClient,
  workspaceId: string,
  changes: readonly ComputedValueChange[],
  at: Date,
  cause: ComputedCause,
): Promise<void> {
  if (changes.length === 0) return;
  const messageIds = changes.map(() => `computed-trait-${crypto.randomUUID()}`);
  const present = changes.flatMap((change, i) => (change.value === undefined ? [] : [{ change, messageId: messageIds[i]! }]));
  const absent = changes.filter((change) => change.value === undefined);

  if (present.length > 0) {
    await client.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at, updated_at)
       select $1, p, k, v, '${COMPUTED_TRAIT_SOURCE_KIND}', k, m, $5, $5 from unnest($2::uuid[], $3::text[], $4::jsonb[], $6::text[]) as x(p, k, v, m)
       on conflict (workspace_id, profile_id, key) do update
         set value = excluded.value, source_kind = excluded.source_kind, source_name = excluded.source_name,
             message_id = excluded.message_id, observed_at = excluded.observed_at, updated_at = excluded.updated_at`,
      [
        workspaceId,
        present.map((p) => p.change.profileId),
        present.map((p) => p.change.trait.key),
        present.map((p) => JSON.stringify(p.change.value)),
        at,
        present.map((p) => p.messageId),
      ],
    );
  }
  if (absent.length > 0) {
    await client.query(
      `delete from profile_traits t using unnest($2::uuid[], $3::text[]) as x(p, k)
        where t.workspace_id = $1 and t.profile_id = any($2::uuid[]) and t.profile_id = x.p and t.key = x.k`,
      [workspaceId, absent.map((c) => c.profileId), absent.map((c) => c.trait.key)],
    );
  }
  const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value));
  await client.query(
    `insert into profile_trait_history (workspace_id, profile_id, key, previous_value, value, source_kind, source_name, message_id, observed_at, reason)
     select $1, p, k, pv, coalesce(v, 'null'::jsonb), '${COMPUTED_TRAIT_SOURCE_KIND}', k, m, $6, 'computed'
       from unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $7::text[]) as x(p, k, pv, v, m)`,
    [
      workspaceId,
      changes.map((c) => c.profileId),
      changes.map((c) => c.trait.key),
      changes.map((c) => json(c.previous)),
      changes.map((c) => json(c.value)),
      at,
      messageIds,
    ],
  );
  const events: SystemEvent[] = changes.map((change, i) => ({
    messageId: messageIds[i]!,
    event: 'Computed Trait Changed',
    profileId: change.profileId,
    properties: {
      trait: change.trait.key,
      previous: change.previous ?? null,
      value: change.value ?? null,
      computed_trait_id: change.trait.id,
      computed_trait_version: change.trait.version,
      cause,
    },
  }));
  await insertSystemEvents(client, workspaceId, events, at);
}

/** JSON equality with object keys in any order (jsonb reorders them). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => sameJson(item, b[i]));
  }
  const aKeys = Object.keys(a);
  const bRecord = b as Record<string, unknown>;
  if (aKeys.length !== Object.keys(bRecord).length) return false;
  return aKeys.every((key) => Object.hasOwn(bRecord, key) && sameJson((a as Record<string, unknown>)[key], bRecord[key]));
}
