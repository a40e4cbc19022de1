import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parseInstant, type NormalizedEvent } from '../ingest/normalize.ts';
import { withTransaction, type Db, type DbClient, type Queryable } from '../storage/database.ts';
import { NotFoundError } from '../workspaces/store.ts';
import { mergeObservations } from './merge.ts';
import { observeEvents } from './observe.ts';
import {
  QueuedObservationsSchema,
  type CatalogueEvent,
  type CatalogueEventDetail,
  type CatalogueProperty,
  type QueuedObservations,
  type WorkspaceObservations,
} from './schemas.ts';

const checkObservations = TypeCompiler.Compile(QueuedObservationsSchema);

/**
 * Queues what `stored` tells the catalogue, inside the caller's transaction (ingest's), so the
 * observations commit with the events or not at all. A plain insert: concurrent requests never
 * wait for each other here.
 */
export async function queueCatalogueObservations(client: Queryable, workspaceId: string, stored: readonly NormalizedEvent[]): Promise<void> {
  if (stored.length === 0) return;
  await client.query('insert into catalogue_queue (workspace_id, observations) values ($1, $2::jsonb)', [
    workspaceId,
    JSON.stringify(observeEvents(stored)),
  ]);
}

export type ObservationsCheck = { ok: true; observations: QueuedObservations } | { ok: false; reason: string };

/** Queued observations as ingest writes them, or why they cannot be applied. */
export function checkQueuedObservations(value: unknown): ObservationsCheck {
  if (!checkObservations.Check(value)) {
    const first = checkObservations.Errors(value).First();
    return { ok: false, reason: `Invalid catalogue observations at ${first?.path || '/'}: ${first?.message ?? 'unexpected shape'}` };
  }
  for (const [index, observation] of value.entries()) {
    for (const field of ['firstSeen', 'lastSeen'] as const) {
      if (parseInstant(observation[field]) === null) {
        return { ok: false, reason: `Invalid catalogue observations at /${index}/${field}: expected an ISO-8601 date-time` };
      }
    }
  }
  return { ok: true, observations: value };
}

// Both statements take rows in primary-key order (ORDER BY), so two drains touching the same
// events lock them in the same order and wait for each other instead of deadlocking.
const UPSERT_EVENTS = `
  insert into event_catalogue (workspace_id, event_type, event_name, first_seen, last_seen, volume)
  select workspace_id, type, name, first_seen, last_seen, volume
    from jsonb_to_recordset($1::jsonb)
      as x(workspace_id uuid, type text, name text, first_seen timestamptz, last_seen timestamptz, volume bigint)
   order by workspace_id, type, name
  on conflict (workspace_id, event_type, event_name) do update set
    first_seen = least(event_catalogue.first_seen, excluded.first_seen),
    last_seen = greatest(event_catalogue.last_seen, excluded.last_seen),
    volume = event_catalogue.volume + excluded.volume`;

const UPSERT_PROPERTIES = `
  insert into event_catalogue_properties
    (workspace_id, event_type, event_name, scope, path, type_counts, first_seen, last_seen, volume)
  select workspace_id, type, name, scope, path, type_counts, first_seen, last_seen, volume
    from jsonb_to_recordset($1::jsonb)
      as x(workspace_id uuid, type text, name text, scope text, path text, type_counts jsonb,
           first_seen timestamptz, last_seen timestamptz, volume bigint)
   order by workspace_id, type, name, scope, path
  on conflict (workspace_id, event_type, event_name, scope, path) do update set
    type_counts = (
      select jsonb_object_agg(t.key, t.count)
        from (
          select key, sum(value::bigint) as count
            from (
              select * from jsonb_each_text(event_catalogue_properties.type_counts)
              union all
              select * from jsonb_each_text(excluded.type_counts)
            ) as both_counts
           group by key
        ) as t
    ),
    first_seen = least(event_catalogue_properties.first_seen, excluded.first_seen),
    last_seen = greatest(event_catalogue_properties.last_seen, excluded.last_seen),
    volume = event_catalogue_properties.volume + excluded.volume`;

/** Adds the observations to the catalogue: merged in memory first, then one statement per table. */
async function applyObservations(client: DbClient, entries: readonly WorkspaceObservations[]): Promise<void> {
  const { events, properties } = mergeObservations(entries);
  if (events.length === 0) return;
  await client.query(UPSERT_EVENTS, [
    JSON.stringify(
      events.map((row) => ({
        workspace_id: row.workspaceId,
        type: row.type,
        name: row.name,
        first_seen: row.firstSeen,
        last_seen: row.lastSeen,
        volume: row.volume,
      })),
    ),
  ]);
  if (properties.length === 0) return;
  await client.query(UPSERT_PROPERTIES, [
    JSON.stringify(
      properties.map((row) => ({
        workspace_id: row.workspaceId,
        type: row.type,
        name: row.name,
        scope: row.scope,
        path: row.path,
        type_counts: row.typeCounts,
        first_seen: row.firstSeen,
        last_seen: row.lastSeen,
        volume: row.volume,
      })),
    ),
  ]);
}

// Oldest first (the partial index), so no request's observations wait behind newer ones; rows
// another drain holds are skipped, not waited for.
const TAKE_QUEUED = `
  delete from catalogue_queue
   where (workspace_id, id) in (
     select workspace_id, id from catalogue_queue
      where refused_reason is null
      order by id
      limit $1
        for update skip locked)
  returning workspace_id, id, observations`;

const KEEP_REFUSED = `
  insert into catalogue_queue (workspace_id, id, observations, refused_reason) overriding system value
  -- A JSON null comes out of jsonb_to_recordset as SQL null; put back exactly what was taken.
  select workspace_id, id, coalesce(observations, 'null'::jsonb), refused_reason
    from jsonb_to_recordset($1::jsonb) as x(workspace_id uuid, id bigint, observations jsonb, refused_reason text)`;

export interface RefusedObservations {
  workspaceId: string;
  /** `catalogue_queue.id` of the row, which stays in the queue with its reason. */
  queueId: number;
  reason: string;
}

export interface DrainResult {
  /** Queue rows taken: applied plus refused. */
  taken: number;
  refused: RefusedObservations[];
}

/**
 * Applies up to `limit` queued requests' observations to the catalogue. Taking the rows (delete)
 * and counting them (upserts) share one transaction, so every observation is counted exactly
 * once: a failed drain rolls back and leaves its rows queued. Several drains may run at once.
 * Rows not shaped as ingest writes them are kept with their reason and never taken again.
 */
export async function drainCatalogueQueue(db: Db, limit = 200): Promise<DrainResult> {
  return withTransaction(db, async (client) => {
    const { rows } = await client.query<{ workspace_id: string; id: number; observations: unknown }>(TAKE_QUEUED, [limit]);
    const valid: WorkspaceObservations[] = [];
    const refused: Array<RefusedObservations & { observations: unknown }> = [];
    for (const row of rows) {
      const checked = checkQueuedObservations(row.observations);
      if (checked.ok) valid.push({ workspaceId: row.workspace_id, observations: checked.observations });
      else refused.push({ workspaceId: row.workspace_id, queueId: row.id, reason: checked.reason, observations: row.observations });
    }
    if (refused.length > 0) {
      await client.query(KEEP_REFUSED, [
        JSON.stringify(
          refused.map((row) => ({ workspace_id: row.workspaceId, id: row.queueId, observations: row.observations, refused_reason: row.reason })),
        ),
      ]);
    }
    await applyObservations(client, valid);
    return { taken: rows.length, refused: refused.map(({ workspaceId, queueId, reason }) => ({ workspaceId, queueId, reason })) };
  });
}

interface EventRow {
  event_type: CatalogueEvent['type'];
  event_name: string;
  first_seen: Date;
  last_seen: Date;
  volume: number;
  property_count: number;
}

const toEvent = (row: EventRow): CatalogueEvent => ({
  type: row.event_type,
  name: row.event_name,
  firstSeen: row.first_seen.toISOString(),
  lastSeen: row.last_seen.toISOString(),
  volume: row.volume,
  propertyCount: row.property_count,
});

const SELECT_EVENTS = `
  select c.event_type, c.event_name, c.first_seen, c.last_seen, c.volume,
         (select count(*)::int from event_catalogue_properties p
           where p.workspace_id = c.workspace_id and p.event_type = c.event_type and p.event_name = c.event_name) as property_count
    from event_catalogue c
   where c.workspace_id = $1`;

/** The events a workspace has sent, most frequent first. */
export async function listCatalogueEvents(
  db: Queryable,
  workspaceId: string,
  filter: { type?: CatalogueEvent['type'] } = {},
): Promise<CatalogueEvent[]> {
  const { rows } = await db.query<EventRow>(
    `${SELECT_EVENTS} and ($2::text is null or c.event_type = $2)
     order by c.volume desc, c.event_type, c.event_name`,
    [workspaceId, filter.type ?? null],
  );
  return rows.map(toEvent);
}

/** One catalogue event with every property path seen on it and the JSON types observed. */
export async function getCatalogueEvent(
  db: Queryable,
  workspaceId: string,
  type: CatalogueEvent['type'],
  name: string,
): Promise<CatalogueEventDetail> {
  const { rows } = await db.query<EventRow>(`${SELECT_EVENTS} and c.event_type = $2 and c.event_name = $3`, [workspaceId, type, name]);
  if (!rows[0]) throw new NotFoundError(`No ${type} event named "${name}" has been seen in this workspace`);
  const properties = await db.query<{
    scope: CatalogueProperty['scope'];
    path: string;
    type_counts: Record<string, number>;
    first_seen: Date;
    last_seen: Date;
    volume: number;
  }>(
    `select scope, path, type_counts, first_seen, last_seen, volume
       from event_catalogue_properties
      where workspace_id = $1 and event_type = $2 and event_name = $3
      order by scope, path`,
    [workspaceId, type, name],
  );
  return {
    ...toEvent(rows[0]),
    properties: properties.rows.map((row) => ({
      scope: row.scope,
      path: row.path,
      types: row.type_counts,
      firstSeen: row.first_seen.toISOString(),
      lastSeen: row.last_seen.toISOString(),
      volume: row.volume,
    })),
  };
}
