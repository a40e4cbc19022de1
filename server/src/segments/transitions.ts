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
  const real: Array<{ segment: SegmentRef; profileId: string; transition: 'entered' | 'exited' }> = [];
  const bySegment = new Map(changes.map((c) => [c.segment.id, c.segment]));

  if (entering.length > 0) {
    const { rows } = await client.query<{ segment_id: string; profile_id: string }>(
      `insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at)
       select $1, s, p, $4 from unnest($2::uuid[], $3::uuid[]) as c(s, p)
       on conflict do nothing
       returning segment_id, profile_id`,
      [workspaceId, entering.map((c) => c.segment.id), entering.map((c) => c.profileId), at],
    );
    for (const row of rows) real.push({ segment: bySegment.get(row.segment_id)!, profileId: row.profile_id, transition: 'entered' });
  }
  if (leaving.length > 0) {
    const { rows } = await client.query<{ segment_id: string; profile_id: string }>(
      `delete from segment_memberships m using unnest($2::uuid[], $3::uuid[]) as c(s, p)
        where m.workspace_id = $1 and m.segment_id = c.s and m.profile_id = c.p
       returning m.segment_id, m.profile_id`,
      [workspaceId, leaving.map((c) => c.segment.id), leaving.map((c) => c.profileId)],
    );
    for (const row of rows) real.push({ segment: bySegment.get(row.segment_id)!, profileId: row.profile_id, transition: 'exited' });
  }
  clock.lap('memberships');
  if (real.length === 0) return [];

  const { rows: recorded } = await client.query<{ id: string; segment_id: string; profile_id: string; transition: 'entered' | 'exited' }>(
    `insert into segment_transitions (workspace_id, segment_id, profile_id, transition, at, cause, segment_version)
     select $1, s, p, t, $5, $6, v from unnest($2::uuid[], $3::uuid[], $4::text[], $7::int[]) as c(s, p, t, v)
     returning id, segment_id, profile_id, transition`,
    [
      workspaceId,
      real.map((r) => r.segment.id),
      real.map((r) => r.profileId),
      real.map((r) => r.transition),
      at,
      cause,
      real.map((r) => r.segment.version),
    ],
  );

  clock.lap('transitions');
  const delta = options.counts ?? new Map<string, number>();
  for (const r of real) delta.set(r.segment.id, (delta.get(r.segment.id) ?? 0) + (r.transition === 'entered' ? 1 : -1));
  if (!options.counts) await applyMemberCounts(client, workspaceId, delta);

  const events = recorded.map((row): SystemEvent => {
    const segment = bySegment.get(row.segment_id)!;
    return {
      // Derived from the transition id, so the timeline holds each transition once.
      messageId: `segment-transition-${row.id}`,
      event: row.transition === 'entered' ? 'Segment Entered' : 'Segment Exited',
      profileId: row.profile_id,
      properties: { segment_id: segment.id, segment_key: segment.key, segment_name: segment.name, segment_version: segment.version, cause },
    };
  });
  await insertSystemEvents(client, workspaceId, events, at);
  clock.lap('systemEvents');

  return recorded.map((row) => ({ id: Number(row.id), segmentId: row.segment_id, profileId: row.profile_id, transition: row.transition }));
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
