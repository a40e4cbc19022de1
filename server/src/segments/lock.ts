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
  await client.query(`select pg_advisory_xact_lock(hashtext('segments:' || $1::text))`, [workspaceId]);
}
