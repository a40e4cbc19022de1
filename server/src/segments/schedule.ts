import type { Db, Queryable } from '../storage/database.ts';
import { computeSegmentWithDependents, type ComputeOutcome } from './compute.ts';
import { nextRunAfter } from './cron.ts';

export interface DueRunOptions {
  /** At most this many due segments per call; the rest wait for the next call. */
  limit?: number;
  /**
   * A segment left 'computing' this long (a process died mid-computation), or 'failed' this long
   * (the database was away, a statement was cancelled), is computed again. Periodic segments
   * retry a failure at their next run instead.
   */
  stalledAfterMs?: number;
}

interface DueRow {
  workspace_id: string;
  id: string;
  schedule: string | null;
  next_run_at: Date | null;
  time_zone: string;
}

/**
 * The periodic scheduler's tick, for the worker to call every few seconds: computes (with their
 * dependents) the active periodic segments whose next_run_at ≤ now, oldest due first, and moves
 * each next_run_at to the schedule's next occurrence after `now` in the workspace's time zone.
 * A run missed while nothing was running happens once, not once per missed occurrence.
 *
 * Each due segment is claimed by moving its next_run_at before computing (compare-and-set on the
 * old value), so several workers calling this at once never compute the same run twice. It also
 * recovers segments stuck in 'computing' because a process died during their computation, and
 * retries failed computations now and then.
 */
export async function runDueSegments(db: Db, now: Date, options: DueRunOptions = {}): Promise<ComputeOutcome[]> {
  const limit = options.limit ?? 20;
  const outcomes: ComputeOutcome[] = [];
  const { rows: due } = await db.query<DueRow>(
    `select s.workspace_id, s.id, s.schedule, s.next_run_at, w.time_zone
       from segments s join workspaces w on w.id = s.workspace_id
      where s.kind = 'periodic' and s.status = 'active' and s.next_run_at <= $1
      order by s.next_run_at limit $2`,
    [now, limit],
  );
  for (const row of due) {
    let next: Date | null;
    try {
      next = nextRunAfter(row.schedule!, row.time_zone, now);
    } catch {
      // An unusable schedule (e.g. the workspace time zone changed to one the parser rejects)
      // still runs now; computeSegment records the error and leaves next_run_at for a fix.
      next = null;
    }
    const { rowCount } = await db.query(
      `update segments set next_run_at = $4 where workspace_id = $1 and id = $2 and next_run_at = $3`,
      [row.workspace_id, row.id, row.next_run_at, next],
    );
    if (rowCount !== 1) continue;
    outcomes.push(...(await computeSegmentWithDependents(db, row.workspace_id, row.id, now, 'compute')));
  }

  // Claimed by touching updated_at, so a segment whose computation keeps failing (or killing the
  // process) is retried once per period rather than on every tick.
  const stalledAfterMs = options.stalledAfterMs ?? 10 * 60_000;
  const { rows: stalled } = await db.query<{ workspace_id: string; id: string }>(
    `update segments set updated_at = now()
      where (workspace_id, id) in (
        select workspace_id, id from segments
         where status = 'active' and definition is not null
           and (state = 'computing' or (state = 'failed' and kind <> 'periodic'))
           and updated_at < now() - make_interval(secs => $1::double precision / 1000)
         order by updated_at limit $2
         for update skip locked)
      returning workspace_id, id`,
    [stalledAfterMs, limit],
  );
  for (const row of stalled) outcomes.push(...(await computeSegmentWithDependents(db, row.workspace_id, row.id, now, 'compute')));
  return outcomes;
}

/**
 * When a workspace's time zone changes, in the same transaction: each periodic segment's next run
 * still waiting (next_run_at after `now`) moves to its schedule's next occurrence in the new zone.
 * Without this the first run after the change would still fire at the old zone's wall-clock time.
 * A run already due keeps its time (the scheduler runs it); a schedule the new zone cannot place
 * keeps its old time, and the scheduler records the error when it runs.
 */
export async function rescheduleSegmentsForTimeZone(db: Queryable, workspaceId: string, timeZone: string, now: Date): Promise<number> {
  const { rows } = await db.query<{ id: string; schedule: string }>(
    `select id, schedule from segments
      where workspace_id = $1 and kind = 'periodic' and schedule is not null and next_run_at > $2`,
    [workspaceId, now],
  );
  let moved = 0;
  for (const row of rows) {
    let next: Date;
    try {
      next = nextRunAfter(row.schedule, timeZone, now);
    } catch {
      continue;
    }
    await db.query('update segments set next_run_at = $3 where workspace_id = $1 and id = $2', [workspaceId, row.id, next]);
    moved += 1;
  }
  return moved;
}
