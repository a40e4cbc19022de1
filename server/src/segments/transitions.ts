import { assignTransactionId, type Db, type DbClient } from '../storage/database.ts';
import { ensureMonthlyPartitions } from '../storage/partitions.ts';
import { noSteps, type StepClock } from './drain-metrics.ts';

export type TransitionCause = 'event' | 'expiry' | 'compute' | 'merge' | 'list';

export interface SegmentRef {
  id: string;
  key: string;
  name: string;
  version: number;
}

export interface MembershipChange {
  segment: SegmentRef;
  profileId: string;
  /** true: the profile should now be a member; false: it should not. */
  member: boolean;
}

export interface RecordedTransition {
  id: number;
  segmentId: string;
  profileId: string;
  transition: 'entered' | 'exited';
}

// Touchpoint's own source, created on first use per workspace. The name cannot clash with a
// user's source: the API refuses names starting with '$'.
const SYSTEM_SOURCE_NAME = '$touchpoint';

/**
 * Makes sure the month partition for events written at `at` exists. Call it on the pool before
 * the transaction that records transitions: partitions are created outside transactions
 * (storage/partitions.ts), so a rolled-back batch never leaves the cache believing in a
 * partition that was undone.
 */
export async function prepareTransitionStorage(db: Db, at: Date): Promise<void> {
  await ensureMonthlyPartitions(db, 'events', [at]);
}

export async function systemSourceId(client: DbClient, workspaceId: string): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `with created as (
       insert into sources (workspace_id, name, kind, party, mode) values ($1, $2, 'system', 'first', 'realtime')
       on conflict (workspace_id, name) do nothing returning id)
     select id from created union all select id from sources where workspace_id = $1 and name = $2 limit 1`,
    [workspaceId, SYSTEM_SOURCE_NAME],
  );
  if (rows[0]) return rows[0].id;
  // Created by a transaction that committed while this statement waited on its row: the insert did
  // nothing, and the statement's snapshot, older than that commit, cannot see it; a new one can.
  const { rows: committed } = await client.query<{ id: string }>('select id from sources where workspace_id = $1 and name = $2', [workspaceId, SYSTEM_SOURCE_NAME]);
  return committed[0]!.id;
}

/**
 * Applies membership changes and records each true transition exactly once: a change that does
 * not alter membership (already a member, already out) records nothing, because the membership
 * row itself decides, inside the caller's transaction, which changes were real. Every recorded
 * transition becomes a `segment_transitions` row (the outbox journeys and destinations read) and
 * a `Segment Entered` / `Segment Exited` event in the profile's timeline.
 *
 * The caller holds whatever lock serialises evaluations of these profiles and has called
 * `prepareTransitionStorage` for `at`.
 */
export async function recordTransitions(
  client: DbClient,
  workspaceId: string,
  changes: readonly MembershipChange[],
  cause: TransitionCause,
  at: Date,
  options: { counts?: Map<string, number>; clock?: StepClock } = {},
): Promise<RecordedTransition[]> {
  const clock = options.clock ?? noSteps;
  if (changes.length === 0) return [];
  const entering = changes.filter((c) => c.member);
  const leaving = changes.filter((c) => !c.member);
  const bySegment = new Map(changes.map((c) => [c.segment.id, c.segment]));
  const segments = [...bySegment.values()];
  const sourceId = await cachedSystemSourceId(client, workspaceId);
  // One statement (it was six round trips: memberships in, out, transitions, the source, the
  // transaction id, the timeline events; each waited on a busy event loop and backend under the
  // real-time load). The membership rows still decide which changes are real: only rows the
  // insert or delete touched are recorded, and each recorded transition's event is derived from
  // its id. The events' seq numbers are drawn after the transaction has its id (pg_current_xact_id,
  // see assignTransactionId).
  const { rows } = await client.query<{ id: string; segment_id: string; profile_id: string; transition: 'entered' | 'exited'; stored: number }>(
    `with entered as (
       insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at)
       select $1, s, p, $6 from unnest($2::uuid[], $3::uuid[]) as c(s, p)
       on conflict do nothing
       returning segment_id, profile_id, 'entered'::text as transition),
     exited as (
       delete from segment_memberships m using unnest($4::uuid[], $5::uuid[]) as c(s, p)
        where m.workspace_id = $1 and m.segment_id = c.s and m.profile_id = c.p
       returning m.segment_id, m.profile_id, 'exited'::text as transition),
     segment as (select * from unnest($8::uuid[], $9::text[], $10::text[], $11::int[]) as g(id, key, name, version)),
     recorded as (
       insert into segment_transitions (workspace_id, segment_id, profile_id, transition, at, cause, segment_version)
       select $1, r.segment_id, r.profile_id, r.transition, $6, $7, g.version
         from (select * from entered union all select * from exited) r join segment g on g.id = r.segment_id
       returning id, segment_id, profile_id, transition),
     writer as materialized (select pg_current_xact_id() as xid),
     incoming as materialized (
       select 'segment-transition-' || r.id as message_id, r.profile_id,
              case when r.transition = 'entered' then 'Segment Entered' else 'Segment Exited' end as event,
              jsonb_build_object('segment_id', g.id, 'segment_key', g.key, 'segment_name', g.name, 'segment_version', g.version, 'cause', $7::text) as properties,
              nextval('events_seq') as seq
         from writer cross join recorded r join segment g on g.id = r.segment_id
        where writer.xid is not null
        order by r.id),
     ids as (
       insert into event_message_ids (workspace_id, message_id)
       select $1, message_id from incoming
       on conflict do nothing returning message_id),
     stored as (
       insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, properties, received_at, profile_id)
       select $1, $6, i.seq, i.message_id, $12, 'track', i.event, i.properties, $6, i.profile_id
         from incoming i join ids using (message_id)
       returning 1)
     select r.id, r.segment_id, r.profile_id, r.transition, (select count(*)::int from stored) as stored
       from recorded r order by r.id`,
    [
      workspaceId,
      entering.map((c) => c.segment.id),
      entering.map((c) => c.profileId),
      leaving.map((c) => c.segment.id),
      leaving.map((c) => c.profileId),
      at,
      cause,
      segments.map((segment) => segment.id),
      segments.map((segment) => segment.key),
      segments.map((segment) => segment.name),
      segments.map((segment) => segment.version),
      sourceId,
    ],
  );
  clock.lap('transitions');
  if (rows.length === 0) return [];
  if (rows[0]!.stored !== rows.length) {
    // Every transition's timeline event must be written with it: a source removed since it was
    // looked up (the cache) is the one way to miss; the batch is undone and tried again.
    systemSources.delete(workspaceId);
    throw new Error(`recorded ${rows.length} segment transitions but stored ${rows[0]!.stored} of their events`);
  }

  const delta = options.counts ?? new Map<string, number>();
  for (const row of rows) delta.set(row.segment_id, (delta.get(row.segment_id) ?? 0) + (row.transition === 'entered' ? 1 : -1));
  if (!options.counts) await applyMemberCounts(client, workspaceId, delta);

  return rows.map((row) => ({ id: Number(row.id), segmentId: row.segment_id, profileId: row.profile_id, transition: row.transition }));
}

// Each workspace's system source id, once it exists (it is created on first use and kept).
const systemSources = new Map<string, string>();
const MAX_CACHED_SOURCES = 10_000;

async function cachedSystemSourceId(client: DbClient, workspaceId: string): Promise<string> {
  const known = systemSources.get(workspaceId);
  if (known) return known;
  const id = await systemSourceId(client, workspaceId);
  if (systemSources.size >= MAX_CACHED_SOURCES) systemSources.clear();
  systemSources.set(workspaceId, id);
  return id;
}

/**
 * Adds member count changes (segment id → delta) to the segments' rows, in segment id order: drains
 * of different profiles run at the same time (lock.ts) and each updates the rows of the segments its
 * profiles entered or left, so they must lock them in one order. A caller recording several sets
 * of transitions in one transaction passes `counts` to recordTransitions and applies them once.
 */
export async function applyMemberCounts(client: DbClient, workspaceId: string, counts: ReadonlyMap<string, number>): Promise<void> {
  const changed = [...counts].filter(([, delta]) => delta !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (changed.length === 0) return;
  // Locked first in that order: an update's join may visit the rows in any order.
  await client.query('select 1 from segments where workspace_id = $1 and id = any($2::uuid[]) order by id for update', [workspaceId, changed.map(([id]) => id)]);
  await client.query(
    `update segments s set member_count = s.member_count + d.delta
       from unnest($2::uuid[], $3::bigint[]) as d(id, delta) where s.workspace_id = $1 and s.id = d.id`,
    [workspaceId, changed.map(([id]) => id), changed.map(([, delta]) => delta)],
  );
}

/** A track event Touchpoint writes into a profile's timeline itself. */
export interface SystemEvent {
  /** Unique in the workspace; an event whose message id was already stored is not written again. */
  messageId: string;
  event: string;
  profileId: string;
  properties: Record<string, unknown>;
}

/**
 * Writes track events from Touchpoint's own source (never queued for identity: the profile is
 * known) at `at`. The month partition for `at` must exist (`prepareTransitionStorage`).
 */
export async function insertSystemEvents(client: DbClient, workspaceId: string, events: readonly SystemEvent[], at: Date): Promise<void> {
  if (events.length === 0) return;
  const sourceId = await systemSourceId(client, workspaceId);
  await assignTransactionId(client);
  await client.query(
    `with incoming as (
       select x.*, nextval('events_seq') as seq
         from jsonb_to_recordset($4::jsonb) as x(message_id text, event text, profile_id uuid, properties jsonb)),
     ids as (
       insert into event_message_ids (workspace_id, message_id)
       select $1, message_id from incoming
       on conflict do nothing returning message_id)
     insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, properties, received_at, profile_id)
     select $1, $3, i.seq, i.message_id, $2, 'track', i.event, i.properties, $3, i.profile_id
       from incoming i join ids using (message_id)`,
    [
      workspaceId,
      sourceId,
      at,
      JSON.stringify(events.map((e) => ({ message_id: e.messageId, event: e.event, profile_id: e.profileId, properties: e.properties }))),
    ],
  );
}
