import { ApiError } from '../api/errors.ts';
import type { Queryable } from '../storage/database.ts';
import type { Overview, SegmentTrends } from './schemas.ts';

export const MAX_OVERVIEW_DAYS = 400;

/** Checks an overview range: both instants valid, from before to, at most MAX_OVERVIEW_DAYS long. */
export function overviewRange(fromText: string, toText: string): { from: Date; to: Date } {
  const from = new Date(fromText);
  const to = new Date(toText);
  if (Number.isNaN(from.getTime())) throw new ApiError(400, 'invalid_request', 'from is not a valid instant', 'from');
  if (Number.isNaN(to.getTime())) throw new ApiError(400, 'invalid_request', 'to is not a valid instant', 'to');
  if (to <= from) throw new ApiError(400, 'invalid_request', 'to must be after from', 'to');
  if (to.getTime() - from.getTime() > MAX_OVERVIEW_DAYS * 86_400_000) {
    throw new ApiError(400, 'invalid_request', `The range may span at most ${MAX_OVERVIEW_DAYS} days`, 'from');
  }
  return { from, to };
}

/** The numbers on the dashboard's first page, in a handful of indexed queries. */
export async function loadOverview(db: Queryable, workspaceId: string, range: { from: Date; to: Date }): Promise<Overview> {
  const { rows: zone } = await db.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
  const timeZone = zone[0]?.time_zone ?? 'UTC';
  const [days, active, profiles, identified, segments, messages, journeys] = await Promise.all([
    db.query<{ day: string; events: string }>(
      `select to_char(timestamp at time zone $4, 'YYYY-MM-DD') as day, count(*) as events
         from events where workspace_id = $1 and timestamp >= $2 and timestamp < $3
        group by 1 order by 1`,
      [workspaceId, range.from, range.to, timeZone],
    ),
    db.query<{ n: string }>(
      `select count(distinct profile_id) as n from events
        where workspace_id = $1 and timestamp >= $2 and timestamp < $3 and profile_id is not null`,
      [workspaceId, range.from, range.to],
    ),
    db.query<{ live: string; created: string }>(
      `select count(*) filter (where merged_into is null) as live,
              count(*) filter (where merged_into is null and coalesce(first_seen, created_at) >= $2 and coalesce(first_seen, created_at) < $3) as created
         from profiles where workspace_id = $1`,
      [workspaceId, range.from, range.to],
    ),
    db.query<{ n: string }>(
      `select count(distinct i.profile_id) as n from profile_identifiers i
         join profiles p on p.workspace_id = i.workspace_id and p.id = i.profile_id and p.merged_into is null
        where i.workspace_id = $1 and i.unbound_at is null and i.type <> 'anonymous_id'`,
      [workspaceId],
    ),
    db.query<{ key: string; name: string; kind: string; member_count: string; is_tag: boolean }>(
      `select key, name, kind, member_count, is_tag from segments
        where workspace_id = $1 and status <> 'archived' order by member_count desc, key limit 8`,
      [workspaceId],
    ),
    db.query<{ sent: string; delivered: string; clicked: string }>(
      `select count(*) filter (where status in ('sent', 'delivered', 'opened', 'clicked')) as sent,
              count(*) filter (where status in ('delivered', 'opened', 'clicked')) as delivered,
              count(*) filter (where status = 'clicked') as clicked
         from messages where workspace_id = $1 and created_at >= $2 and created_at < $3`,
      [workspaceId, range.from, range.to],
    ),
    db.query<{ n: string }>(`select count(*) as n from journeys where workspace_id = $1 and status = 'published'`, [workspaceId]),
  ]);
  const eventsPerDay = days.rows.map((row) => ({ day: row.day, events: Number(row.events) }));
  return {
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    timeZone,
    eventsPerDay,
    events: eventsPerDay.reduce((sum, day) => sum + day.events, 0),
    activeProfiles: Number(active.rows[0]?.n ?? 0),
    profiles: Number(profiles.rows[0]?.live ?? 0),
    identifiedProfiles: Number(identified.rows[0]?.n ?? 0),
    newProfiles: Number(profiles.rows[0]?.created ?? 0),
    messages: {
      sent: Number(messages.rows[0]?.sent ?? 0),
      delivered: Number(messages.rows[0]?.delivered ?? 0),
      clicked: Number(messages.rows[0]?.clicked ?? 0),
    },
    activeJourneys: Number(journeys.rows[0]?.n ?? 0),
    topSegments: segments.rows.map((row) => ({ key: row.key, name: row.name, kind: row.kind, members: Number(row.member_count), isTag: row.is_tag })),
  };
}

/**
 * Entries and exits per day of the workspace's segments (or one), for the segment list's trend and
 * the membership history: counted in the database, so a segment with millions of transitions costs
 * one grouped scan of its index range rather than pages of rows.
 */
export async function loadSegmentTrends(db: Queryable, workspaceId: string, range: { from: Date; to: Date }, key?: string): Promise<SegmentTrends> {
  const { rows: zone } = await db.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
  const timeZone = zone[0]?.time_zone ?? 'UTC';
  const { rows: segments } = await db.query<{ id: string; key: string; member_count: string }>(
    `select id, key, member_count from segments
      where workspace_id = $1 and status <> 'archived' and ($2::text is null or key = $2)
      order by member_count desc, key limit 200`,
    [workspaceId, key ?? null],
  );
  if (key && segments.length === 0) throw new ApiError(404, 'not_found', `No segment with key ${key}`, 'key');
  const ids = segments.map((segment) => segment.id);
  const [days, after] = await Promise.all([
    db.query<{ segment_id: string; day: string; entered: string; exited: string }>(
      `select segment_id, to_char(at at time zone $5, 'YYYY-MM-DD') as day,
              count(*) filter (where transition = 'entered') as entered, count(*) filter (where transition = 'exited') as exited
         from segment_transitions
        where workspace_id = $1 and segment_id = any($2::uuid[]) and at >= $3 and at < $4
        group by 1, 2 order by 1, 2`,
      [workspaceId, ids, range.from, range.to, timeZone],
    ),
    db.query<{ segment_id: string; net: string }>(
      `select segment_id, sum(case when transition = 'entered' then 1 else -1 end) as net
         from segment_transitions where workspace_id = $1 and segment_id = any($2::uuid[]) and at >= $3
        group by 1`,
      [workspaceId, ids, range.to],
    ),
  ]);
  const netAfter = new Map(after.rows.map((row) => [row.segment_id, Number(row.net)]));
  return {
    timeZone,
    items: segments.map((segment) => ({
      key: segment.key,
      members: Number(segment.member_count),
      changedSince: netAfter.get(segment.id) ?? 0,
      days: days.rows
        .filter((row) => row.segment_id === segment.id)
        .map((row) => ({ day: row.day, entered: Number(row.entered), exited: Number(row.exited) })),
    })),
  };
}
