import type { DbClient } from '../storage/database.ts';

/**
 * The lock every change of a workspace's segment memberships takes (the real-time drain, full
 * computations, merges ending an absorbed profile's memberships): one writer per workspace at a
 * time, so an evaluation never races another over the same membership rows. Held to the end of
 * the caller's transaction.
 *
 * Lock order: a transaction that also takes the workspace's identity lock takes that one first,
 * and takes this one before writing any row the real-time drain writes (segment_queue,
 * profile_traits, memberships).
 */
export async function lockWorkspaceSegments(client: DbClient, workspaceId: string): Promise<void> {
  await client.query(`select ${lockWorkspaceSegmentsSql('$1::text')}`, [workspaceId]);
}

/** The same lock as an SQL call (a select-list item), for `workspace` (SQL of type text: a parameter or literal). */
export const lockWorkspaceSegmentsSql = (workspace: string) => `pg_advisory_xact_lock(hashtext('segments:' || ${workspace}))`;

/**
 * How the real-time drain runs beside itself: profiles are split by `drainPart` into DRAIN_PARTS
 * disjoint parts, and a drain of one part takes the workspace lock shared (drains of other parts
 * run at the same time; every other holder takes it exclusively and so still excludes them all)
 * plus its part's own lock exclusively (one drain per part at a time). The count is fixed: drains
 * splitting the profiles differently would not be disjoint.
 */
export const DRAIN_PARTS = 2;

/** SQL for a profile id's drain part (0 … DRAIN_PARTS − 1): its last byte, random in every uuid version. */
export const drainPart = (column: string) => `(get_byte(uuid_send(${column}), 15) % ${DRAIN_PARTS})`;

/**
 * A drain part's locks as SQL (select-list items; `workspace` of type text, `part` an integer): the
 * workspace lock shared, the part's exclusively. Their order does not matter: a holder of the
 * exclusive workspace lock takes no part lock.
 */
export const lockWorkspaceSegmentsPartSql = (workspace: string, part: number) =>
  `pg_advisory_xact_lock_shared(hashtext('segments:' || ${workspace})), pg_advisory_xact_lock(hashtext('segments-part:' || ${workspace} || ':' || ${Math.trunc(part)}::int))`;
