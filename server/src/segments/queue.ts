import type { Db, DbClient, Queryable } from '../storage/database.ts';
import { plainArray } from '../storage/pg-array.ts';
import { lockWorkspaceSegments } from './lock.ts';
import { MEMBERSHIPS_OF_PROFILES } from './snapshots.ts';
import { prepareTransitionStorage, recordTransitions } from './transitions.ts';

/*
 * What the rest of the system calls when a profile's data changes, inside the transaction that
 * changes it: the profile is queued for real-time segment evaluation (segments/realtime.ts), and
 * a merged-away profile leaves its segments.
 */

/**
 * Queues live profiles for re-evaluation: one row per profile however many changes arrive before
 * the drain takes it; a change to a profile already queued bumps the row's version, which tells a
 * drain evaluating it right now to leave it queued (realtime.ts). Sorted, so concurrent callers
 * lock rows in one order. It does not wait for a running drain (that only reads the rows until
 * its last statement).
 */
export async function enqueueSegmentEvaluation(client: DbClient, workspaceId: string, profileIds: Iterable<string>): Promise<void> {
  const ids = [...new Set(profileIds)].sort();
  if (ids.length === 0) return;
  await client.query(
    `insert into segment_queue (workspace_id, profile_id) select $1, p from unnest($2::uuid[]) as p
     on conflict (workspace_id, profile_id) do update set version = segment_queue.version + 1`,
    [workspaceId, plainArray(ids)],
  );
}

/**
 * Ends the queue rows a drain took and has evaluated: those still at the version it read. A row
 * re-queued since (a higher version), or being re-queued now (locked by an uncommitted
 * enqueueSegmentEvaluation: skipped rather than waited for), stays for the next drain. Under the
 * workspace segment lock, in the evaluating transaction. `rowId`: the row's ctid as taken, in the
 * same transaction.
 */
export async function finishQueuedProfiles(
  client: Queryable,
  workspaceId: string,
  taken: ReadonlyArray<{ profileId: string; version: number; rowId?: string }>,
): Promise<void> {
  if (taken.length === 0) return;
  if (taken.every((t) => t.rowId !== undefined)) {
    // The rows' addresses as taken (ctid): one heap visit per profile instead of a primary-key
    // probe. A row re-queued since has a new address (the update wrote a new version); the old one
    // is no longer visible, so it is skipped, and one being re-queued now is locked: skipped too.
    await client.query(finishByAddressSql('$1', '$2', '$3', '$4'), [workspaceId, taken.map((t) => t.rowId), taken.map((t) => t.profileId), taken.map((t) => t.version)]);
    return;
  }
  await client.query(
    `delete from segment_queue q using (
       select found.ctid from unnest($2::uuid[], $3::int[]) as t(id, version)
        cross join lateral (
          select ctid from segment_queue x where x.workspace_id = $1 and x.profile_id = t.id and x.version = t.version
          offset 0 for update skip locked) found) f
      where q.ctid = f.ctid`,
    [workspaceId, taken.map((t) => t.profileId), taken.map((t) => t.version)],
  );
}

/** finishQueuedProfiles's delete by address, with its parameters named (workspace, tid[], uuid[], int[]): for a caller's own statement. */
export const finishByAddressSql = (workspace: string, rowIds: string, profileIds: string, versions: string) =>
  `delete from segment_queue q using (
     select x.ctid from segment_queue x join unnest(${rowIds}::tid[], ${profileIds}::uuid[], ${versions}::int[]) as t(row_id, id, version)
         on x.ctid = t.row_id and x.profile_id = t.id and x.version = t.version
      where x.ctid = any(${rowIds}::tid[]) and x.workspace_id = ${workspace}
      for update of x skip locked) f
    where q.ctid = f.ctid`;

/**
 * The month partitions a merge's `Segment Exited` events land in (now, and the next month when a
 * transaction starting now may commit in it). On the pool, before the transaction.
 */
export async function prepareMergeTransitions(db: Db): Promise<void> {
  const now = Date.now();
  await prepareTransitionStorage(db, new Date(now));
  await prepareTransitionStorage(db, new Date(now + 60_000));
}

/**
 * A merge's effect on segments, inside the merge's transaction before it writes any trait row:
 * every membership of an absorbed profile ends (cause 'merge'), the absorbed profiles leave the
 * queues, and the survivors are queued, so their membership reflects the merged data. Takes the
 * workspace's segment lock, so no evaluation of an absorbed profile can commit a membership after
 * this. `prepareMergeTransitions` made the partition for `at`.
 */
export async function segmentsAfterMerges(
  client: DbClient,
  workspaceId: string,
  absorbedIds: readonly string[],
  survivorIds: readonly string[],
  at = new Date(),
  options: { survivorsQueued?: boolean } = {},
): Promise<void> {
  if (absorbedIds.length === 0) return;
  await lockWorkspaceSegments(client, workspaceId);
  // A resolution batch has queued every profile its events landed on, the survivors among them,
  // in this transaction already: queueing them again only rewrote the same rows.
  if (!options.survivorsQueued) await enqueueSegmentEvaluation(client, workspaceId, survivorIds);
  await deleteProfileRows(client, 'segment_queue', workspaceId, absorbedIds);
  await deleteProfileRows(client, 'segment_rechecks', workspaceId, absorbedIds);
  const { rows } = await client.query<{ profile_id: string; id: string; key: string; name: string; version: number }>(
    `select m.profile_id, s.id, s.key, s.name, s.version
       from ${MEMBERSHIPS_OF_PROFILES} join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id`,
    [workspaceId, absorbedIds],
  );
  await recordTransitions(
    client,
    workspaceId,
    rows.map((row) => ({ segment: { id: row.id, key: row.key, name: row.name, version: row.version }, profileId: row.profile_id, member: false })),
    'merge',
    at,
  );
}

/**
 * Deletes the rows of the given profiles from a table keyed (workspace_id, profile_id): each found
 * by one primary-key probe, then deleted by its row address. As `profile_id = any($2)` the planner,
 * with no statistics on workspace_id, scanned the workspace's whole (workspace_id, due_at) or
 * (workspace_id, queued_at) index instead (27 ms instead of 2 ms for 500 of 70,000 re-checks).
 * The caller holds the workspace segment lock, under which re-checks change. A queue row updated
 * meanwhile by a re-queue outside it is left (its address moved): a later drain takes it and,
 * finding the profile merged away, ends it.
 */
export async function deleteProfileRows(
  client: Queryable,
  table: 'segment_queue' | 'segment_rechecks',
  workspaceId: string,
  profileIds: readonly string[],
): Promise<void> {
  if (profileIds.length === 0) return;
  await client.query(deleteProfileRowsSql(table, '$1', '$2'), [workspaceId, profileIds]);
}

/** deleteProfileRows's statement, with its parameters named (workspace, uuid[]): for a caller's own statement. */
export const deleteProfileRowsSql = (table: 'segment_queue' | 'segment_rechecks', workspace: string, profileIds: string) =>
  `delete from ${table} t using (
     select found.ctid from unnest(${profileIds}::uuid[]) as p(id)
      cross join lateral (select ctid from ${table} x where x.workspace_id = ${workspace} and x.profile_id = p.id offset 0) found) f
    where t.ctid = f.ctid`;
