import { ApiError } from '../api/errors.ts';
import type { DbClient, Queryable } from '../storage/database.ts';
import type { ChannelKind } from './contract.ts';
import { DEFAULT_POLICY } from './enqueue.ts';
import type { Policy } from './schemas.ts';

export async function getPolicy(db: Queryable, workspaceId: string): Promise<Policy> {
  const { rows } = await db.query<Policy>(
    `select frequency_caps as "frequencyCaps", quiet_hours as "quietHours", require_opt_in as "requireOptIn" from channel_policies where workspace_id = $1`,
    [workspaceId],
  );
  return rows[0] ?? DEFAULT_POLICY;
}

export async function putPolicy(db: Queryable, workspaceId: string, policy: Policy): Promise<Policy> {
  await db.query(
    `insert into channel_policies (workspace_id, frequency_caps, quiet_hours, require_opt_in) values ($1, $2, $3, $4)
     on conflict (workspace_id) do update set frequency_caps = excluded.frequency_caps, quiet_hours = excluded.quiet_hours,
       require_opt_in = excluded.require_opt_in, updated_at = now()`,
    [workspaceId, JSON.stringify(policy.frequencyCaps), policy.quietHours ? JSON.stringify(policy.quietHours) : null, policy.requireOptIn],
  );
  return getPolicy(db, workspaceId);
}

/** Normalises an address the way recipients.ts reads it, so list entries match sends. */
export function normaliseAddress(channel: ChannelKind, address: string): string {
  return channel === 'email' ? address.trim().toLowerCase() : address.trim();
}

export async function addSuppressions(db: Queryable, workspaceId: string, entries: readonly { channel: ChannelKind; address: string; reason: string }[]): Promise<void> {
  if (entries.length === 0) return;
  await db.query(
    `insert into channel_suppressions (workspace_id, channel, address, reason)
     select $1, * from unnest($2::text[], $3::text[], $4::text[]) on conflict (workspace_id, channel, address) do update set reason = excluded.reason`,
    [workspaceId, entries.map((e) => e.channel), entries.map((e) => normaliseAddress(e.channel, e.address)), entries.map((e) => e.reason)],
  );
}

export async function removeSuppression(db: Queryable, workspaceId: string, channel: ChannelKind, address: string): Promise<void> {
  const { rowCount } = await db.query('delete from channel_suppressions where workspace_id = $1 and channel = $2 and address = $3', [
    workspaceId,
    channel,
    normaliseAddress(channel, address),
  ]);
  if (!rowCount) throw new ApiError(404, 'not_found', `${address} is not suppressed for ${channel}`);
}

export async function listSuppressions(db: Queryable, workspaceId: string, channel?: ChannelKind) {
  const { rows } = await db.query<{ channel: ChannelKind; address: string; reason: string; created_at: Date }>(
    `select channel, address, reason, created_at from channel_suppressions where workspace_id = $1 and ($2::text is null or channel = $2)
      order by created_at desc limit 1000`,
    [workspaceId, channel ?? null],
  );
  return rows.map((row) => ({ channel: row.channel, address: row.address, reason: row.reason, createdAt: row.created_at.toISOString() }));
}

export async function putSubscriptionGroup(
  db: Queryable,
  workspaceId: string,
  group: { key: string; name: string; channel?: ChannelKind; mode?: 'opt_in' | 'opt_out' },
) {
  const { rows } = await db.query<{ key: string; name: string; channel: ChannelKind | null; mode: 'opt_in' | 'opt_out' }>(
    `insert into subscription_groups (workspace_id, key, name, channel, mode) values ($1, $2, $3, $4, $5)
     on conflict (workspace_id, key) do update set name = excluded.name, channel = excluded.channel, mode = excluded.mode
     returning key, name, channel, mode`,
    [workspaceId, group.key, group.name, group.channel ?? null, group.mode ?? 'opt_out'],
  );
  return rows[0]!;
}

export async function listSubscriptionGroups(db: Queryable, workspaceId: string) {
  const { rows } = await db.query<{ key: string; name: string; channel: ChannelKind | null; mode: 'opt_in' | 'opt_out' }>(
    'select key, name, channel, mode from subscription_groups where workspace_id = $1 order by key',
    [workspaceId],
  );
  return rows;
}

/** Records a profile's choice for a group (or `channel:<kind>` for a whole channel). */
export async function setSubscription(client: DbClient | Queryable, workspaceId: string, profileId: string, groupKey: string, subscribed: boolean, source: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `insert into profile_subscriptions (workspace_id, profile_id, group_key, subscribed, source) values ($1, $2, $3, $4, $5)
     on conflict (workspace_id, profile_id, group_key) do update set subscribed = excluded.subscribed, source = excluded.source, updated_at = now()
       where profile_subscriptions.subscribed is distinct from excluded.subscribed`,
    [workspaceId, profileId, groupKey, subscribed, source],
  );
  return (rowCount ?? 0) > 0;
}

export async function subscriptionsOf(db: Queryable, workspaceId: string, profileId: string): Promise<Record<string, boolean>> {
  const { rows } = await db.query<{ group_key: string; subscribed: boolean }>(
    'select group_key, subscribed from profile_subscriptions where workspace_id = $1 and profile_id = $2',
    [workspaceId, profileId],
  );
  return Object.fromEntries(rows.map((row) => [row.group_key, row.subscribed]));
}
