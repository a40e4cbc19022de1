import { lockWorkspaceIdentity } from '../identity/resolver.ts';
import { CUT_GONE_FROM_IDENTITY_QUEUE } from '../identity/queue-take.ts';
import type { Db } from '../storage/database.ts';
import { forgetPartition, monthStart } from '../storage/partitions.ts';
import { personalDataSteps } from './registry.ts';
import './steps.ts';

export interface RetentionOutcome {
  /** Events deleted row by row, per workspace id. */
  eventsDeleted: Record<string, number>;
  /** Monthly event partitions dropped whole (older than every workspace's retention). */
  partitionsDropped: string[];
  /** Inactive profiles erased, per workspace id. */
  profilesPurged: Record<string, number>;
}

const DAY_MS = 24 * 3600 * 1000;
const DELETE_BATCH = 10_000;
const PURGE_BATCH = 200;

/**
 * Applies each workspace's retention: raw events older than `event_retention_days` are deleted
 * (in batches, so no statement holds locks for long), whole monthly partitions are dropped once
 * every workspace's cutoff has passed them, and profiles not seen for `profile_inactivity_days`
 * are erased through the same steps as an erasure request (without suppressing their
 * identifiers: an inactive customer may come back).
 */
export async function applyRetention(db: Db, now: Date): Promise<RetentionOutcome> {
  const outcome: RetentionOutcome = { eventsDeleted: {}, partitionsDropped: [], profilesPurged: {} };
  const { rows: settings } = await db.query<{ id: string; event_retention_days: number | null; profile_inactivity_days: number | null }>(
    `select w.id, s.event_retention_days, s.profile_inactivity_days from workspaces w left join privacy_settings s on s.workspace_id = w.id`,
  );

  for (const workspace of settings) {
    if (!workspace.event_retention_days) continue;
    const cutoff = new Date(now.getTime() - workspace.event_retention_days * DAY_MS);
    let deleted = 0;
    for (;;) {
      const { rowCount } = await db.query(
        `with gone as (
           delete from events where (workspace_id, timestamp, seq) in (
             select workspace_id, timestamp, seq from events where workspace_id = $1 and timestamp < $2 limit $3)
           returning seq, message_id
         ), ids as (
           delete from event_message_ids m using gone where m.workspace_id = $1 and m.message_id = gone.message_id
         ), ${CUT_GONE_FROM_IDENTITY_QUEUE}
         select 1 from gone`,
        [workspace.id, cutoff, DELETE_BATCH],
      );
      deleted += rowCount ?? 0;
      if ((rowCount ?? 0) < DELETE_BATCH) break;
    }
    outcome.eventsDeleted[workspace.id] = deleted;
  }

  // A partition goes whole only when every workspace keeps events for a bounded time and all of
  // them are past its end.
  if (settings.length > 0 && settings.every((workspace) => workspace.event_retention_days)) {
    const longest = Math.max(...settings.map((workspace) => workspace.event_retention_days!));
    const keepFrom = monthStart(new Date(now.getTime() - longest * DAY_MS));
    const { rows: partitions } = await db.query<{ name: string; upper: Date }>(
      `select c.relname as name,
              (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz as upper
         from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'events'::regclass`,
    );
    for (const partition of partitions) {
      if (partition.upper && partition.upper <= keepFrom) {
        await db.query(`drop table if exists ${partition.name.replace(/[^a-z0-9_]/g, '')}`);
        forgetPartition(db, partition.name);
        outcome.partitionsDropped.push(partition.name);
      }
    }
  }

  for (const workspace of settings) {
    if (!workspace.profile_inactivity_days) continue;
    const cutoff = new Date(now.getTime() - workspace.profile_inactivity_days * DAY_MS);
    let purged = 0;
    for (;;) {
      const { rows: stale } = await db.query<{ id: string }>(
        `select id from profiles where workspace_id = $1 and merged_into is null and coalesce(last_seen, created_at) < $2 limit $3`,
        [workspace.id, cutoff, PURGE_BATCH],
      );
      if (stale.length === 0) break;
      for (const profile of stale) {
        await purgeProfile(db, workspace.id, profile.id);
        purged++;
      }
    }
    outcome.profilesPurged[workspace.id] = purged;
  }
  return outcome;
}

async function purgeProfile(db: Db, workspaceId: string, profileId: string): Promise<void> {
  const client = await db.connect();
  try {
    await client.query('begin');
    // As erasure: under the identity lock, so no resolution batch links the person meanwhile.
    await lockWorkspaceIdentity(client, workspaceId);
    const { rows: family } = await client.query<{ id: string }>(
      `with recursive family as (select id from profiles where workspace_id = $1 and id = $2
         union select p.id from profiles p join family f on p.merged_into = f.id where p.workspace_id = $1)
       select id from family`,
      [workspaceId, profileId],
    );
    const profileIds = family.map((row) => row.id);
    const { rows: identifiers } = await client.query<{ type: string; value: string }>(
      'select distinct type, value from profile_identifiers where workspace_id = $1 and profile_id = any($2::uuid[])',
      [workspaceId, profileIds],
    );
    const subject = { workspaceId, profileIds, identifiers, values: [...new Set(identifiers.map((identifier) => identifier.value))] };
    for (const step of personalDataSteps()) await step.erase(client, subject);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}
