import { performance } from 'node:perf_hooks';
import { withTransaction, type Db, type DbClient } from '../storage/database.ts';
import { dependencyOrder, referencedBy } from './dependencies.ts';
import { lockWorkspaceSegments } from './lock.ts';
import { nextRunAfter } from './cron.ts';
import type { Condition } from './ast.ts';
import { timeSensitiveData } from './rechecks.ts';
import { compileSegmentQuery } from './sql/compile.ts';
import { encodeSegmentCondition } from '../privacy/pii-segments.ts';
import { findSegmentById, listLiveSegments, segmentGraph, segmentIdsByKey, segmentRef, type SegmentRecord } from './store.ts';
import { prepareTransitionStorage, recordTransitions, type MembershipChange, type TransitionCause } from './transitions.ts';

// The one workspace segment lock (lock.ts), shared with the real-time worker and merges.
export { lockWorkspaceSegments };

// recordTransitions sends its changes as arrays and writes one event per transition; chunks of
// this size keep each statement's parameters and the events' JSON in the low megabytes.
export const TRANSITION_CHUNK = 10_000;

export interface ComputeOutcome {
  segmentId: string;
  key: string;
  /** skipped: archived, or a static list (nothing to evaluate). */
  state: 'ready' | 'failed' | 'skipped';
  entered: number;
  exited: number;
  memberCount: number;
  durationMs: number;
  error?: string;
}

/**
 * Applies `changes` (in chunks) through recordTransitions, the one way memberships change, and
 * counts the real transitions. The caller holds the workspace segment lock.
 */
export async function applyMembershipChanges(
  client: DbClient,
  workspaceId: string,
  changes: readonly MembershipChange[],
  cause: TransitionCause,
  at: Date,
): Promise<{ entered: number; exited: number }> {
  let entered = 0;
  let exited = 0;
  for (let start = 0; start < changes.length; start += TRANSITION_CHUNK) {
    const recorded = await recordTransitions(client, workspaceId, changes.slice(start, start + TRANSITION_CHUNK), cause, at);
    for (const transition of recorded) {
      if (transition.transition === 'entered') entered += 1;
      else exited += 1;
    }
  }
  return { entered, exited };
}

/**
 * Evaluates a segment over every live profile of the workspace at `now` and moves its membership
 * there: entering = result except current members, leaving = current members except result, both
 * worked out in SQL into a temporary table and applied in chunks, in one transaction under the
 * workspace segment lock. Only true transitions are recorded, so computing twice records nothing
 * the second time, and an edit records only the profiles whose membership really changed.
 * On failure the segment is marked failed with the error and the membership stays as it was; a
 * periodic segment tries again at its next run, others when the scheduler retries failed ones.
 */
export async function computeSegment(
  db: Db,
  workspaceId: string,
  segmentId: string,
  now: Date,
  cause: TransitionCause = 'compute',
): Promise<ComputeOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  await prepareTransitionStorage(db, now);
  let segment: SegmentRecord | null = null;
  try {
    return await withTransaction(db, async (client) => {
      await lockWorkspaceSegments(client, workspaceId);
      // Read under the lock: an edit committed while we waited is the definition to compute.
      segment = await findSegmentById(client, workspaceId, segmentId);
      if (!segment || segment.status === 'archived' || segment.definition === null) {
        return {
          segmentId,
          key: segment?.key ?? '',
          state: 'skipped' as const,
          entered: 0,
          exited: 0,
          memberCount: segment?.memberCount ?? 0,
          durationMs: elapsed(),
        };
      }
      const live = await listLiveSegments(client, workspaceId);
      // Literals compared with encrypted PII traits become the tokens the traits hold (privacy/pii-segments.ts).
      const definition = await encodeSegmentCondition(client, workspaceId, segment.definition);
      const query = compileSegmentQuery(definition, { workspaceId, now, segmentIds: segmentIdsByKey(live) });
      const nextRunAt = segment.kind === 'periodic' ? nextRunAfter(segment.schedule!, segment.timeZone, now) : null;
      const { entered, exited } = await moveMembership(client, workspaceId, segment, query, cause, now);
      if (segment.kind === 'realtime' && segment.status === 'active') await scheduleTimeRechecks(client, workspaceId, segment.definition, now);
      const { rows } = await client.query<{ member_count: number }>(
        `update segments set state = 'ready', last_error = null, computed_at = $3, next_run_at = $4,
                member_count = (select count(*) from segment_memberships where workspace_id = $1 and segment_id = $2)
          where workspace_id = $1 and id = $2 returning member_count`,
        [workspaceId, segmentId, now, nextRunAt],
      );
      return { segmentId, key: segment.key, state: 'ready' as const, entered, exited, memberCount: rows[0]!.member_count, durationMs: elapsed() };
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const failed = segment as SegmentRecord | null;
    // A periodic segment tries again at its next run rather than never.
    let nextRunAt: Date | null = null;
    if (failed?.kind === 'periodic' && failed.schedule) {
      try {
        nextRunAt = nextRunAfter(failed.schedule, failed.timeZone, now);
      } catch {
        nextRunAt = null;
      }
    }
    const { rows } = await db.query<{ key: string; member_count: number }>(
      `update segments set state = 'failed', last_error = $3, next_run_at = coalesce($4, next_run_at), updated_at = now()
        where workspace_id = $1 and id = $2 returning key, member_count`,
      [workspaceId, segmentId, message.slice(0, 2000), nextRunAt],
    );
    return {
      segmentId,
      key: rows[0]?.key ?? '',
      state: 'failed',
      entered: 0,
      exited: 0,
      memberCount: rows[0]?.member_count ?? 0,
      durationMs: elapsed(),
      error: message,
    };
  }
}

async function moveMembership(
  client: DbClient,
  workspaceId: string,
  segment: SegmentRecord,
  query: { text: string; values: unknown[] },
  cause: TransitionCause,
  now: Date,
): Promise<{ entered: number; exited: number }> {
  await client.query(
    `create temporary table segment_changes (n bigint generated always as identity, profile_id uuid not null, member boolean not null)
     on commit drop`,
  );
  const workspaceParam = query.values.length + 1;
  const segmentParam = query.values.length + 2;
  const { rowCount } = await client.query(
    `insert into segment_changes (profile_id, member)
     with result as materialized (select distinct profile_id from (${query.text}) as compiled where profile_id is not null),
          current_members as materialized (
            select profile_id from segment_memberships where workspace_id = $${workspaceParam} and segment_id = $${segmentParam})
     select profile_id, true from (select profile_id from result except select profile_id from current_members) as entering
     union all
     select profile_id, false from (select profile_id from current_members except select profile_id from result) as leaving`,
    [...query.values, workspaceId, segment.id],
  );
  const total = rowCount ?? 0;
  const ref = segmentRef(segment);
  let entered = 0;
  let exited = 0;
  for (let from = 0; from < total; from += TRANSITION_CHUNK) {
    const { rows } = await client.query<{ profile_id: string; member: boolean }>(
      'select profile_id, member from segment_changes where n > $1 and n <= $2',
      [from, from + TRANSITION_CHUNK],
    );
    const applied = await applyMembershipChanges(
      client,
      workspaceId,
      rows.map((row) => ({ segment: ref, profileId: row.profile_id, member: row.member })),
      cause,
      now,
    );
    entered += applied.entered;
    exited += applied.exited;
  }
  await client.query('drop table segment_changes');
  return { entered, exited };
}

/**
 * After a full computation the real-time worker keeps a realtime segment fresh, but it re-checks
 * a profile by the clock only at the times its own evaluations asked for, and none of them knew
 * this definition. So every profile whose answer can change with time alone is given a re-check
 * due now; the worker evaluates it and files its real next re-check. Those are the profiles
 * holding data a time-dependent part of the definition reads (rechecks.ts): a trait read with a
 * relative date test, or a matching event recent enough to still move through a window; anyone
 * else's answer is fixed until new data arrives, which queues them anyway.
 */
async function scheduleTimeRechecks(client: DbClient, workspaceId: string, condition: Condition, now: Date): Promise<void> {
  const sensitive = timeSensitiveData(condition);
  if (sensitive.traits.length === 0 && sensitive.events.length === 0) return;
  const horizons = sensitive.events.map((e) => e.horizonMs);
  // The oldest event that can matter, as a plain bound so old months' partitions are skipped.
  const oldest = horizons.some((h) => h === null) || horizons.length === 0 ? null : new Date(now.getTime() - Math.max(...(horizons as number[])));
  await client.query(
    `insert into segment_rechecks (workspace_id, profile_id, due_at)
     select $1, p.id, $2 from profiles p
      where p.workspace_id = $1 and p.merged_into is null
        and (p.id in (select t.profile_id from profile_traits t where t.workspace_id = $1 and t.key = any($3::text[]))
             or p.id in (
               select e.profile_id from events e
                 join unnest($4::text[], $5::text[], $6::double precision[]) as m(type, name, horizon_ms)
                   on e.type = m.type
                  and (m.name is null or m.name = case when m.type = 'track' then e.event else e.name end)
                  and (m.horizon_ms is null or e.timestamp > $2::timestamptz - m.horizon_ms * interval '1 millisecond')
                where e.workspace_id = $1 and e.profile_id is not null and ($7::timestamptz is null or e.timestamp > $7)))
     on conflict (workspace_id, profile_id) do update set due_at = least(segment_rechecks.due_at, excluded.due_at)`,
    [
      workspaceId,
      now,
      sensitive.traits,
      sensitive.events.map((e) => e.match.type),
      sensitive.events.map((e) => e.match.name ?? null),
      horizons,
      oldest,
    ],
  );
}

/**
 * The live, evaluated segments that read `key` through in_segment (directly or through each
 * other), recomputed in dependency order. Static segments are snapshots and are left alone, and
 * so is anything that reads only through them; paused segments stay frozen.
 */
export async function recomputeDependents(db: Db, workspaceId: string, key: string, now: Date): Promise<ComputeOutcome[]> {
  const live = await listLiveSegments(db, workspaceId);
  const followed = live.filter((s) => s.key === key || (s.kind !== 'static' && s.status === 'active'));
  const graph = segmentGraph(followed);
  const dependents = referencedBy(graph, key);
  const byKey = new Map(followed.map((s) => [s.key, s]));
  const outcomes: ComputeOutcome[] = [];
  for (const dependent of dependencyOrder(graph, dependents)) {
    outcomes.push(await computeSegment(db, workspaceId, byKey.get(dependent)!.id, now, 'compute'));
  }
  return outcomes;
}

/** computeSegment, then (if it succeeded) the segments that depend on it. */
export async function computeSegmentWithDependents(
  db: Db,
  workspaceId: string,
  segmentId: string,
  now: Date,
  cause: TransitionCause = 'compute',
): Promise<ComputeOutcome[]> {
  const first = await computeSegment(db, workspaceId, segmentId, now, cause);
  if (first.state !== 'ready') return [first];
  return [first, ...(await recomputeDependents(db, workspaceId, first.key, now))];
}
