import type { Db, Queryable } from '../storage/database.ts';
import { withTransaction } from '../storage/database.ts';
import { cancelMessages } from './messages.ts';

/*
 * Blocked profiles: an operator's flag on the profile itself (not on an address) that no message
 * of any channel or purpose is sent to it. The guards read it at enqueue (recipients.ts loads it
 * with the profile; guards.ts skips with reason `blocked`) and the dispatcher reads it again at
 * send time, so a message queued before the block is skipped too. Blocking also cancels the
 * profile's queued and held messages at once (reason `blocked`).
 */

export interface ProfileBlock {
  profileId: string;
  reason: string | null;
  blockedBy: string;
  blockedAt: Date;
}

interface BlockRow {
  profile_id: string;
  reason: string | null;
  blocked_by: string;
  blocked_at: Date;
}

const toBlock = (row: BlockRow): ProfileBlock => ({ profileId: row.profile_id, reason: row.reason, blockedBy: row.blocked_by, blockedAt: row.blocked_at });

/** Blocks a profile (again: the reason and author are updated); returns the block and the messages cancelled. */
export async function blockProfile(
  db: Db,
  workspaceId: string,
  profileId: string,
  input: { reason?: string | null; blockedBy: string },
  now: Date,
): Promise<{ block: ProfileBlock; cancelledMessages: number }> {
  return withTransaction(db, async (client) => {
    const { rows } = await client.query<BlockRow>(
      `insert into profile_blocks (workspace_id, profile_id, reason, blocked_by, blocked_at) values ($1, $2, $3, $4, $5)
       on conflict (workspace_id, profile_id) do update set reason = excluded.reason, blocked_by = excluded.blocked_by
       returning profile_id, reason, blocked_by, blocked_at`,
      [workspaceId, profileId, input.reason ?? null, input.blockedBy, now],
    );
    const cancelledMessages = await cancelMessages(client, workspaceId, { profileId }, 'blocked');
    return { block: toBlock(rows[0]!), cancelledMessages };
  });
}

/** Clears the block; false when the profile was not blocked. Cancelled messages stay cancelled. */
export async function unblockProfile(db: Queryable, workspaceId: string, profileId: string): Promise<boolean> {
  const { rowCount } = await db.query('delete from profile_blocks where workspace_id = $1 and profile_id = $2', [workspaceId, profileId]);
  return (rowCount ?? 0) > 0;
}

export async function listBlocks(db: Queryable, workspaceId: string, limit = 500): Promise<ProfileBlock[]> {
  const { rows } = await db.query<BlockRow>(
    'select profile_id, reason, blocked_by, blocked_at from profile_blocks where workspace_id = $1 order by blocked_at desc, profile_id limit $2',
    [workspaceId, limit],
  );
  return rows.map(toBlock);
}
