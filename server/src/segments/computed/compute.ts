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
 * real-time refresh would compute it, with the same evaluator (one meaning).
 *
 * Reading: one read-only snapshot streams the live profiles and the events the definition can
 * match (by type, name and window start), both ordered by profile id, through two cursors: one
 * pass over the events table instead of a timeline-index probe per profile, which fetched a heap
 * page per event of every type (20,000 profiles / 400,000 events: loading 5.4 s by batches of
 * 2,000 ids, 0.7 s as one sorted scan).
 *
 * Writing: batches of profiles, each in its own short transaction under the workspace's segment
 * lock, so the real-time worker interleaves with a long computation. A profile whose row changed
 * since the snapshot (every transaction that gives a profile events — identity batches, merges,
 * unmerges — updates its row, so its xmin moves) is re-read fresh inside the batch's transaction;
 * one merged away since is skipped; one created since is the real-time refresh's. Only changed
 * values are written.
 *
 * Measured (bench/computed-traits.ts, 20,000 profiles / 400,000 retail events, 2 busy cores):
 * a new trait, every value written with history and event, 3,900–12,000 profiles/s; a recompute
 * that changes nothing, 4,000–24,000 profiles/s (unique lists over the most frequent event are
 * the slow end). 1M profiles / 20M events: minutes per trait, in the background.
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
  /** Called after each batch is written (progress so far). */
  onProgress?: (progress: { profiles: number; changed: number }) => void | Promise<void>;
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
  const need = eventNeedOf(trait.definition);

  let profiles = 0;
  let changed = 0;
  const reader = await db.connect();
  try {
    const stream = await openSnapshotStream(reader, workspaceId, need, now);
    for (;;) {
      const snapshot = await stream.nextBatch(batchSize);
      if (snapshot.profiles.length === 0) break;
      const batch = await withTransaction(db, async (client) => {
        await lockWorkspaceSegments(client, workspaceId);
        if (!(await stillCurrent(client, workspaceId, trait))) return null;
        const { live, moved } = await changedSinceSnapshot(client, workspaceId, snapshot.profiles);
        const events = new Map(snapshot.events);
        const fresh = await loadMatchingEvents(client, workspaceId, moved, [need], now);
        for (const id of moved) events.set(id, fresh.get(id) ?? []);
        const result = await refreshValues(client, workspaceId, [trait], live, events, now, 'compute');
        await scheduleRechecks(client, workspaceId, result.recheckAt);
        return { changed: result.changedProfiles.size, profiles: live.length };
      });
      if (!batch) {
        await stream.close();
        return { outcome: 'superseded', profiles, changed, durationMs: Date.now() - started };
      }
      profiles += batch.profiles;
      changed += batch.changed;
      await options.onProgress?.({ profiles, changed });
    }
    await stream.close();
  } catch (error) {
    await reader.query('rollback').catch(() => undefined);
    await markComputed(db, workspaceId, trait.id, trait.version, { state: 'failed', error: error instanceof Error ? error.message : String(error) });
    throw error;
  } finally {
    reader.release();
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

interface SnapshotProfile {
  id: string;
  /** The row version the snapshot saw (xmin as text). */
  xmin: string;
}

interface SnapshotBatch {
  profiles: SnapshotProfile[];
  events: Map<string, ProfileEvent[]>;
}

const EVENT_FETCH = 10_000;

/**
 * Two cursors in one repeatable-read snapshot: live profiles and matching events, both by
 * profile id; `nextBatch` returns the next profiles with all their events.
 */
async function openSnapshotStream(reader: DbClient, workspaceId: string, need: EventNeed, now: number) {
  await reader.query('begin isolation level repeatable read read only');
  // A cursor is planned for its first rows by default: an index scan in profile order, a heap
  // page per event. The whole result is wanted: scan and sort.
  await reader.query('set local cursor_tuple_fraction = 1.0');
  await reader.query(
    'declare computed_profiles no scroll cursor for select id, xmin::text as xmin from profiles where workspace_id = $1 and merged_into is null order by id',
    [workspaceId],
  );
  const filter = eventFilterSql([need], now, 2);
  await reader.query(
    `declare computed_events no scroll cursor for
       select ${eventColumns(need.readsContext)} from events e
        where e.workspace_id = $1 and e.profile_id is not null and ${filter.sql}
        order by e.profile_id`,
    [workspaceId, ...filter.values],
  );
  let pending: EventRow[] = [];
  let eventsDone = false;
  return {
    async nextBatch(size: number): Promise<SnapshotBatch> {
      const { rows: profiles } = await reader.query<SnapshotProfile>(`fetch ${size} from computed_profiles`);
      const events = new Map<string, ProfileEvent[]>();
      if (profiles.length === 0) return { profiles, events };
      const last = profiles.at(-1)!.id;
      const wanted = new Set(profiles.map((profile) => profile.id));
      for (;;) {
        // uuid order is the order of the lowercase hex text.
        const cut = pending.findIndex((row) => row.profile_id > last);
        const taken = cut < 0 ? pending : pending.slice(0, cut);
        for (const row of taken) if (wanted.has(row.profile_id)) addEvent(events, row);
        if (cut >= 0) {
          pending = pending.slice(cut);
          break;
        }
        pending = [];
        if (eventsDone) break;
        const { rows } = await reader.query<EventRow>(`fetch ${EVENT_FETCH} from computed_events`);
        if (rows.length < EVENT_FETCH) eventsDone = true;
        pending = rows;
      }
      return { profiles, events };
    },
    async close(): Promise<void> {
      await reader.query('commit');
    },
  };
}

/**
 * Which of a batch's snapshot profiles are still live, and which of those changed since the
 * snapshot (their events must be read again).
 */
async function changedSinceSnapshot(
  client: DbClient,
  workspaceId: string,
  profiles: readonly SnapshotProfile[],
): Promise<{ live: string[]; moved: string[] }> {
  const { rows } = await client.query<SnapshotProfile>(
    'select id, xmin::text as xmin from profiles where workspace_id = $1 and id = any($2::uuid[]) and merged_into is null',
    [workspaceId, profiles.map((profile) => profile.id)],
  );
  const current = new Map(rows.map((row) => [row.id, row.xmin]));
  const live = profiles.filter((profile) => current.has(profile.id));
  return { live: live.map((profile) => profile.id), moved: live.filter((profile) => current.get(profile.id) !== profile.xmin).map((profile) => profile.id) };
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

const eventColumns = (withContext: boolean) =>
  `e.profile_id, e.seq, e.type, e.event, e.name, e.timestamp, e.properties${withContext ? ', e.context' : ''}`;

function addEvent(byProfile: Map<string, ProfileEvent[]>, row: EventRow): void {
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
  const { rows } = await db.query<EventRow>(
    `select ${eventColumns(needs.some((need) => need.readsContext))} from events e
      where e.workspace_id = $1 and e.profile_id = any($2::uuid[]) and ${filter.sql}`,
    [workspaceId, profileIds, ...filter.values],
  );
  for (const row of rows) addEvent(byProfile, row);
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
