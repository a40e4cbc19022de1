import crypto from 'node:crypto';
import type { Db } from '../src/storage/database.ts';
import { ensureMonthlyPartitions } from '../src/storage/partitions.ts';

/*
 * Profiles, traits, identifiers and events written straight into their tables, for segment tests
 * that need exact data rather than identity resolution's path to it.
 */

export interface ProfileSeed {
  traits?: Record<string, unknown>;
  identifiers?: Array<{ type: string; value: string }>;
}

export async function insertProfile(db: Db, workspaceId: string, seed: ProfileSeed = {}): Promise<string> {
  const { rows } = await db.query<{ id: string }>('insert into profiles (workspace_id) values ($1) returning id', [workspaceId]);
  const id = rows[0]!.id;
  await setTraits(db, workspaceId, id, seed.traits ?? {});
  for (const identifier of seed.identifiers ?? []) {
    await db.query(
      `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen)
       values ($1, $2, $3, $4, now(), now())`,
      [workspaceId, id, identifier.type, identifier.value],
    );
  }
  return id;
}

/** Sets (or, with undefined, removes) traits of a profile. */
export async function setTraits(db: Db, workspaceId: string, profileId: string, traits: Record<string, unknown>): Promise<void> {
  for (const [key, value] of Object.entries(traits)) {
    if (value === undefined) {
      await db.query('delete from profile_traits where workspace_id = $1 and profile_id = $2 and key = $3', [workspaceId, profileId, key]);
      continue;
    }
    await db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       values ($1, $2, $3, $4, 'crm_import', 'test', $5, now())
       on conflict (workspace_id, profile_id, key) do update set value = excluded.value`,
      [workspaceId, profileId, key, JSON.stringify(value), crypto.randomUUID()],
    );
  }
}

export async function insertTrack(
  db: Db,
  workspaceId: string,
  sourceId: string,
  profileId: string,
  event: string,
  timestamp: string,
  properties: Record<string, unknown> = {},
): Promise<void> {
  const at = new Date(timestamp);
  await ensureMonthlyPartitions(db, 'events', [at]);
  await db.query(
    `insert into events (workspace_id, timestamp, message_id, source_id, type, event, properties, received_at, profile_id)
     values ($1, $2, $3, $4, 'track', $5, $6, $2, $7)`,
    [workspaceId, at, crypto.randomUUID(), sourceId, event, JSON.stringify(properties), profileId],
  );
}

export async function memberIds(db: Db, workspaceId: string, segmentId: string): Promise<string[]> {
  const { rows } = await db.query<{ profile_id: string }>(
    'select profile_id from segment_memberships where workspace_id = $1 and segment_id = $2 order by profile_id',
    [workspaceId, segmentId],
  );
  return rows.map((row) => row.profile_id);
}

export interface TransitionRow {
  profile_id: string;
  transition: 'entered' | 'exited';
  cause: string;
  segment_version: number;
}

export async function transitionsOf(db: Db, workspaceId: string, segmentId: string): Promise<TransitionRow[]> {
  const { rows } = await db.query<TransitionRow>(
    `select profile_id, transition, cause, segment_version from segment_transitions
      where workspace_id = $1 and segment_id = $2 order by id`,
    [workspaceId, segmentId],
  );
  return rows;
}

export const sorted = (ids: Iterable<string>) => [...ids].sort();
