import { TypeCompiler } from '@sinclair/typebox/compiler';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { NotFoundError } from '../workspaces/store.ts';
import { mergeObservations } from './merge.ts';
import {
  CatalogueJobSchema,
  type CatalogueEvent,
  type CatalogueEventDetail,
  type CatalogueJob,
  type CatalogueProperty,
} from './schemas.ts';

const checkJob = TypeCompiler.Compile(CatalogueJobSchema);

/** A `catalogue.observe` payload that is not what ingest enqueues; the job fails with this message. */
export class InvalidCatalogueJobError extends Error {
  override name = 'InvalidCatalogueJobError';
}

export function parseCatalogueJob(payload: unknown): CatalogueJob {
  if (checkJob.Check(payload)) return payload;
  const first = checkJob.Errors(payload).First();
  throw new InvalidCatalogueJobError(`Invalid catalogue.observe payload at ${first?.path || '/'}: ${first?.message ?? 'unexpected shape'}`);
}

// Both statements take rows in primary-key order (ORDER BY), so two jobs touching the same
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

/**
 * Applies one `catalogue.observe` job: all its observations are merged in memory first, then
 * written in a single transaction (one statement per table), so a job is counted entirely or,
 * when it fails and is retried, not at all.
 */
export async function applyCatalogueJob(db: Db, payload: unknown): Promise<{ events: number; properties: number }> {
  const { events, properties } = mergeObservations(parseCatalogueJob(payload));
  if (events.length === 0) return { events: 0, properties: 0 };
  await withTransaction(db, async (client) => {
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
    if (properties.length > 0) {
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
  });
  return { events: events.length, properties: properties.length };
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
