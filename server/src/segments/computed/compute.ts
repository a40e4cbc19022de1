import type { Db, DbClient, Queryable } from '../../storage/database.ts';
import { withTransaction } from '../../storage/database.ts';
import { parseInstant } from '../../ingest/normalize.ts';
import { durationMs, type EventMatch, type Window } from '../ast.ts';
import { lockWorkspaceSegments } from '../lock.ts';
import type { ProfileEvent } from '../snapshot.ts';
import { prepareTransitionStorage } from '../transitions.ts';
import type { ComputedTraitDefinition } from './definition.ts';
import { evaluateComputedTrait } from './evaluate.ts';
import {
  changedValues,
  getComputedTraitById,
  loadStoredValues,
  markComputed,
  writeComputedValues,
  type ComputedCause,
  type ComputedTrait,
  type ComputedValue,
} from './store.ts';

/*
 * Full computation of a computed trait: its value for every live profile of the workspace, as the
 * real-time refresh would compute it, with the same evaluator (one meaning). Profiles are taken in
 * batches by id; each batch loads only the events the definition can match (by type and name,
 * bounded by its window: the timeline index and partition pruning do the rest), evaluates them in
 * memory, and writes only the values that changed, in its own short transaction under the
 * workspace's segment lock, so the real-time worker interleaves with a long computation instead of
 * waiting for it.
 */

/** The events a definition reads: which ones, and from when. The one place that reads its shape. */
export interface EventNeed {
  match: EventMatch;
  window?: Window;
  /** Whether a path of the definition reads the event's context (otherwise it is not loaded). */
  readsContext: boolean;
}

export function eventNeedOf(definition: ComputedTraitDefinition): EventNeed {
  const readsContext = propertyPaths(definition).some((path) => path === 'context' || path.startsWith('context.'));
  return definition.window ? { match: definition.match, window: definition.window, readsContext } : { match: definition.match, readsContext };
}

/** Every event path a definition names (filters' and the measured property): strings under a `property` key. */
function propertyPaths(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(propertyPaths);
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => (key === 'property' && typeof child === 'string' ? [child] : propertyPaths(child)));
}

export interface ComputeOptions {
  /** The evaluation instant (ms since the epoch); the clock by default. */
  now?: number;
  /** Profiles per transaction. */
  batchSize?: number;
}

export interface ComputeResult {
  /** completed: every live profile has this version's value; superseded: the definition changed or
   * the trait was paused/archived while computing (the newer computation takes over). */
  outcome: 'completed' | 'superseded';
  profiles: number;
  changed: number;
  durationMs: number;
}

const DEFAULT_BATCH = 2000;

/** The worker task's body: payload `{ workspaceId, computedTraitId }` (queued by the API). */
export async function runComputeJob(db: Db, payload: unknown): Promise<void> {
  const { workspaceId, computedTraitId } = (payload ?? {}) as { workspaceId?: unknown; computedTraitId?: unknown };
  if (typeof workspaceId !== 'string' || typeof computedTraitId !== 'string') {
    throw new TypeError(`computed-traits.compute needs { workspaceId, computedTraitId }, got ${JSON.stringify(payload)}`);
  }
  await computeComputedTrait(db, workspaceId, computedTraitId);
}

/**
 * Computes a trait's values for all live profiles and marks it ready (or failed, with the error,
 * which is rethrown so a job can retry). Changed profiles are queued for segment evaluation
 * (segments reading `trait.<key>` follow), and time-dependent values schedule a re-check.
 */
export async function computeComputedTrait(db: Db, workspaceId: string, traitId: string, options: ComputeOptions = {}): Promise<ComputeResult> {
  const started = Date.now();
  const now = options.now ?? Date.now();
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  const trait = await getComputedTraitById(db, workspaceId, traitId);
  if (!trait || trait.status !== 'active') return { outcome: 'superseded', profiles: 0, changed: 0, durationMs: Date.now() - started };
  await prepareTransitionStorage(db, new Date(now));

  let after = '00000000-0000-0000-0000-000000000000';
  let profiles = 0;
  let changed = 0;
  try {
    for (;;) {
      const batch = await withTransaction(db, async (client) => {
        await lockWorkspaceSegments(client, workspaceId);
        if (!(await stillCurrent(client, workspaceId, trait))) return null;
        const ids = await liveProfilesAfter(client, workspaceId, after, batchSize);
        if (ids.length === 0) return { ids, changed: 0 };
        const events = await loadMatchingEvents(client, workspaceId, ids, [eventNeedOf(trait.definition)], now);
        const result = await refreshValues(client, workspaceId, [trait], ids, events, now, 'compute');
        await scheduleRechecks(client, workspaceId, result.recheckAt);
        return { ids, changed: result.changedProfiles.size };
      });
      if (!batch) return { outcome: 'superseded', profiles, changed, durationMs: Date.now() - started };
      if (batch.ids.length === 0) break;
      profiles += batch.ids.length;
      changed += batch.changed;
      after = batch.ids.at(-1)!;
    }
  } catch (error) {
    await markComputed(db, workspaceId, trait.id, trait.version, { state: 'failed', error: error instanceof Error ? error.message : String(error) });
    throw error;
  }
  await markComputed(db, workspaceId, trait.id, trait.version, { state: 'ready', at: new Date(now) });
  return { outcome: 'completed', profiles, changed, durationMs: Date.now() - started };
}

async function stillCurrent(client: DbClient, workspaceId: string, trait: ComputedTrait): Promise<boolean> {
  const { rows } = await client.query<{ version: number; status: string }>(
    'select version, status from computed_traits where workspace_id = $1 and id = $2',
    [workspaceId, trait.id],
  );
  return rows[0]?.version === trait.version && rows[0].status === 'active';
}

async function liveProfilesAfter(db: Queryable, workspaceId: string, after: string, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'select id from profiles where workspace_id = $1 and id > $2 and merged_into is null order by id limit $3',
    [workspaceId, after, limit],
  );
  return rows.map((row) => row.id);
}

/**
 * Evaluates `traits` for the profiles over their events, writes what changed (cause as given) and
 * queues the changed profiles for segment evaluation. Returns every value (for snapshots), the
 * profiles that changed, and each profile's earliest re-check.
 */
export async function refreshValues(
  client: DbClient,
  workspaceId: string,
  traits: readonly ComputedTrait[],
  profileIds: readonly string[],
  eventsByProfile: ReadonlyMap<string, readonly ProfileEvent[]>,
  now: number,
  cause: ComputedCause,
): Promise<{ values: ComputedValue[]; changedProfiles: Set<string>; recheckAt: Map<string, number> }> {
  const values: ComputedValue[] = [];
  const recheckAt = new Map<string, number>();
  for (const trait of traits) {
    const ref = { id: trait.id, key: trait.key, version: trait.version };
    for (const profileId of profileIds) {
      const result = evaluateComputedTrait(trait.definition, eventsByProfile.get(profileId) ?? [], now);
      values.push({ profileId, trait: ref, value: result.value });
      if (result.recheckAt !== null) {
        const current = recheckAt.get(profileId);
        if (current === undefined || result.recheckAt < current) recheckAt.set(profileId, result.recheckAt);
      }
    }
  }
  const stored = await loadStoredValues(client, workspaceId, profileIds, traits.map((trait) => trait.key));
  const changes = changedValues(values, stored);
  await writeComputedValues(client, workspaceId, changes, new Date(now), cause);
  const changedProfiles = new Set(changes.map((change) => change.profileId));
  if (cause === 'compute' && changedProfiles.size > 0) {
    // Segments reading these traits follow in the real-time drain (the drain's own refreshes
    // queue nothing: it evaluates the segments in the same pass).
    await client.query(
      `insert into segment_queue (workspace_id, profile_id) select $1, p from unnest($2::uuid[]) as p on conflict do nothing`,
      [workspaceId, [...changedProfiles]],
    );
  }
  return { values, changedProfiles, recheckAt };
}

/** Keeps each profile's earliest re-check (segment_rechecks holds one moment per profile for every evaluation). */
async function scheduleRechecks(client: DbClient, workspaceId: string, recheckAt: ReadonlyMap<string, number>): Promise<void> {
  if (recheckAt.size === 0) return;
  await client.query(
    `insert into segment_rechecks (workspace_id, profile_id, due_at)
     select $1, p, d from unnest($2::uuid[], $3::timestamptz[]) as x(p, d)
     on conflict (workspace_id, profile_id) do update set due_at = least(segment_rechecks.due_at, excluded.due_at)`,
    [workspaceId, [...recheckAt.keys()], [...recheckAt.values()].map((ms) => new Date(ms))],
  );
}

interface EventRow {
  profile_id: string;
  seq: number;
  type: ProfileEvent['type'];
  event: string | null;
  name: string | null;
  timestamp: Date;
  properties: Record<string, unknown> | null;
  context?: Record<string, unknown> | null;
}

/**
 * The profiles' events any of `needs` can match (type and name; filters are the evaluator's), from
 * the earliest moment a need's window reaches back to. Uses the profile timeline index.
 */
export async function loadMatchingEvents(
  db: Queryable,
  workspaceId: string,
  profileIds: readonly string[],
  needs: readonly EventNeed[],
  now: number,
): Promise<Map<string, ProfileEvent[]>> {
  const byProfile = new Map<string, ProfileEvent[]>();
  if (profileIds.length === 0 || needs.length === 0) return byProfile;
  const filter = eventFilterSql(needs, now, 3);
  const withContext = needs.some((need) => need.readsContext);
  const { rows } = await db.query<EventRow>(
    `select e.profile_id, e.seq, e.type, e.event, e.name, e.timestamp, e.properties${withContext ? ', e.context' : ''}
       from events e
      where e.workspace_id = $1 and e.profile_id = any($2::uuid[]) and ${filter.sql}`,
    [workspaceId, profileIds, ...filter.values],
  );
  for (const row of rows) {
    let events = byProfile.get(row.profile_id);
    if (!events) byProfile.set(row.profile_id, (events = []));
    events.push({
      seq: row.seq,
      type: row.type,
      event: row.event,
      name: row.name,
      timestamp: row.timestamp.getTime(),
      properties: row.properties,
      context: row.context ?? null,
    });
  }
  return byProfile;
}

/**
 * SQL selecting the events of `needs` by type, name and time (parameters numbered from `first`).
 * A superset of what the needs match: filters and exact window edges are the evaluator's. Pure.
 */
export function eventFilterSql(needs: readonly EventNeed[], now: number, first: number): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return `$${first + values.length - 1}`;
  };
  const column = { track: 'e.event', page: 'e.name', screen: 'e.name' } as const;
  const byType = new Map<EventMatch['type'], { all: boolean; names: Set<string>; from: number | null; unbounded: boolean }>();
  for (const need of needs) {
    const entry = byType.get(need.match.type) ?? { all: false, names: new Set<string>(), from: null, unbounded: false };
    if (need.match.name === undefined) entry.all = true;
    else entry.names.add(need.match.name);
    const from = windowStart(need.window, now);
    if (from === null) entry.unbounded = true;
    else entry.from = entry.from === null ? from : Math.min(entry.from, from);
    byType.set(need.match.type, entry);
  }
  const clauses = [...byType].map(([type, entry]) => {
    const parts = [`e.type = ${param(type)}`];
    if (!entry.all) parts.push(`${column[type]} = any(${param([...entry.names])}::text[])`);
    if (!entry.unbounded && entry.from !== null) parts.push(`e.timestamp >= ${param(new Date(entry.from))}`);
    return `(${parts.join(' and ')})`;
  });
  return { sql: clauses.length === 1 ? clauses[0]! : `(${clauses.join(' or ')})`, values };
}

/** The earliest event time a window can include (ms), or null when it reaches back without end. */
function windowStart(window: Window | undefined, now: number): number | null {
  if (!window) return null;
  if (window.kind === 'last') return now - durationMs(window.duration);
  return window.from === undefined ? null : parseInstant(window.from);
}
