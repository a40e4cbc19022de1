import crypto from 'node:crypto';
import type { Queryable } from '../src/storage/database.ts';
import { ensureMonthlyPartitions } from '../src/storage/partitions.ts';
import type { ProfileEvent } from '../src/segments/snapshot.ts';

/*
 * Profile histories written straight into the tables the SQL compiler reads (profiles,
 * profile_traits, profile_identifiers, profile_consents, segment_memberships, events), for the
 * compiler's unit tests and the SQL-vs-incremental equivalence test.
 */

export interface TestWorkspace {
  workspaceId: string;
  sourceId: string;
}

export interface ProfileFixture {
  id: string;
  /** Set for a profile merged into another: never a member of anything. */
  mergedInto?: string;
  traits?: Record<string, unknown>;
  identifiers?: Array<{ type: string; value: string; unbound?: boolean }>;
  consents?: Record<string, boolean>;
  /** Segment ids. */
  memberships?: string[];
  events?: ProfileEvent[];
}

export async function createWorkspace(db: Queryable, slug: string): Promise<TestWorkspace> {
  const { rows } = await db.query<{ id: string }>(`insert into workspaces (slug, name) values ($1, $1) returning id`, [slug]);
  const workspaceId = rows[0]!.id;
  const source = await db.query<{ id: string }>(
    `insert into sources (workspace_id, name, kind) values ($1, 'test', 'server') returning id`,
    [workspaceId],
  );
  return { workspaceId, sourceId: source.rows[0]!.id };
}

/** Writes the profiles and everything they hold; `unresolved` events have no profile (identity not run). */
export async function loadProfiles(
  db: Queryable & object,
  workspace: TestWorkspace,
  profiles: readonly ProfileFixture[],
  unresolved: readonly ProfileEvent[] = [],
): Promise<void> {
  const { workspaceId, sourceId } = workspace;
  await db.query(
    `insert into profiles (workspace_id, id, merged_into)
     select $1, id, merged_into from jsonb_to_recordset($2::jsonb) as r(id uuid, merged_into uuid)`,
    [workspaceId, JSON.stringify(profiles.map((p) => ({ id: p.id, merged_into: p.mergedInto ?? null })))],
  );
  const traits = profiles.flatMap((p) => Object.entries(p.traits ?? {}).map(([key, value]) => ({ profile_id: p.id, key, value: JSON.stringify(value) })));
  await db.query(
    `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
     select $1, profile_id, key, value::jsonb, 'test', 'test', 'm', now() from jsonb_to_recordset($2::jsonb) as r(profile_id uuid, key text, value text)`,
    [workspaceId, JSON.stringify(traits)],
  );
  const identifiers = profiles.flatMap((p) => (p.identifiers ?? []).map((i) => ({ profile_id: p.id, type: i.type, value: i.value, unbound: i.unbound ?? false })));
  await db.query(
    `insert into profile_identifiers (workspace_id, profile_id, type, value, first_seen, last_seen, unbound_at)
     select $1, profile_id, type, value, now(), now(), case when unbound then now() end
       from jsonb_to_recordset($2::jsonb) as r(profile_id uuid, type text, value text, unbound boolean)`,
    [workspaceId, JSON.stringify(identifiers)],
  );
  const consents = profiles.flatMap((p) => Object.entries(p.consents ?? {}).map(([category, granted]) => ({ profile_id: p.id, category, granted })));
  await db.query(
    `insert into profile_consents (workspace_id, profile_id, category, granted, observed_at)
     select $1, profile_id, category, granted, now() from jsonb_to_recordset($2::jsonb) as r(profile_id uuid, category text, granted boolean)`,
    [workspaceId, JSON.stringify(consents)],
  );
  const memberships = profiles.flatMap((p) => (p.memberships ?? []).map((segment_id) => ({ profile_id: p.id, segment_id })));
  await db.query(
    `insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at)
     select $1, segment_id, profile_id, now() from jsonb_to_recordset($2::jsonb) as r(profile_id uuid, segment_id uuid)`,
    [workspaceId, JSON.stringify(memberships)],
  );
  const events = [
    ...profiles.flatMap((p) => (p.events ?? []).map((event) => ({ event, profileId: p.id }))),
    ...unresolved.map((event) => ({ event, profileId: null })),
  ];
  await ensureMonthlyPartitions(db, 'events', events.map(({ event }) => new Date(event.timestamp)));
  const rows = events.map(({ event, profileId }) => ({
    timestamp: new Date(event.timestamp).toISOString(),
    seq: event.seq,
    message_id: crypto.randomUUID(),
    type: event.type,
    event: event.event,
    name: event.name,
    properties: event.properties === null ? null : JSON.stringify(event.properties),
    context: event.context === null ? null : JSON.stringify(event.context),
    profile_id: profileId,
  }));
  // In chunks: one statement's JSON parameter stays small.
  for (let i = 0; i < rows.length; i += 5000) {
    await db.query(
      `insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, name, properties, context, received_at, profile_id)
       select $1, timestamp, seq, message_id, $2, type, event, name, properties::jsonb, context::jsonb, now(), profile_id
         from jsonb_to_recordset($3::jsonb)
           as r(timestamp timestamptz, seq bigint, message_id text, type text, event text, name text, properties text, context text, profile_id uuid)`,
      [workspaceId, sourceId, JSON.stringify(rows.slice(i, i + 5000))],
    );
  }
}
