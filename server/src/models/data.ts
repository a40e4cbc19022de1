import type { Queryable } from '../storage/database.ts';

/*
 * What the models read from the event history, aggregated in PostgreSQL (one pass over the
 * workspace's events in the time range, grouped by live profile) so a run moves per-profile
 * summaries, not events, into the process. Events Touchpoint writes itself (source `$touchpoint`:
 * segment transitions, lifecycle changes, …) are not behaviour and are left out.
 */

const DAY = 86_400_000;

/** A decimal number in full, as ast.ts's value rules read numbers from JSON strings. */
const NUMERIC = `'^\\s*-?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?\\s*$'`;
const pathOf = (property: string) => property.split('.');

export interface PurchaseHistory {
  /** Distinct purchase days (UTC midnight, ms), ascending. */
  days: number[];
  /** Revenue per day (non-numeric values count 0). */
  revenue: number[];
}

/**
 * Each live profile's purchase days before `until`. Purchases on one day count as one (the
 * convention of BG/NBD work on transaction logs: several orders in a day are one visit); a day
 * whose values add up to less than zero (only returns or cancellations) is not a purchase day.
 */
export async function loadPurchases(
  db: Queryable,
  workspaceId: string,
  config: { purchaseEvent: string; revenueProperty: string },
  until: Date,
): Promise<Map<string, PurchaseHistory>> {
  const { rows } = await db.query<{ profile_id: string; days: string[]; revenue: string[] }>(
    `select profile_id, array_agg(day order by day) as days, array_agg(revenue order by day) as revenue from (
       select e.profile_id, (extract(epoch from date_trunc('day', e.timestamp, 'UTC')) * 1000)::bigint as day,
              sum(case when (e.properties #>> $4::text[]) ~ ${NUMERIC} then (e.properties #>> $4::text[])::float8 else 0 end) as revenue
         from events e
         join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id and p.merged_into is null
        where e.workspace_id = $1 and e.type = 'track' and e.event = $2 and e.timestamp < $3 and e.profile_id is not null
        group by 1, 2
       having sum(case when (e.properties #>> $4::text[]) ~ ${NUMERIC} then (e.properties #>> $4::text[])::float8 else 0 end) >= 0) x
      group by profile_id`,
    [workspaceId, config.purchaseEvent, until, pathOf(config.revenueProperty)],
  );
  return new Map(rows.map((row) => [row.profile_id, { days: row.days.map(Number), revenue: row.revenue.map(Number) }]));
}

export interface ActivityRow {
  firstAt: number;
  lastAt: number;
  lastReturnAt: number | null;
}

/**
 * Each live profile's first and last `event` before `until`, and the last event that ended a gap
 * of more than `gapDays` (lifecycle.ts summarizeActivity, set-wise).
 */
export async function loadActivity(db: Queryable, workspaceId: string, event: string, gapDays: number, until: Date): Promise<Map<string, ActivityRow>> {
  const { rows } = await db.query<{ profile_id: string; first_at: string; last_at: string; last_return_at: string | null }>(
    `select profile_id, min(ms) as first_at, max(ms) as last_at, max(ms) filter (where ms - previous > $4::float8 * 86400000) as last_return_at
       from (select e.profile_id, extract(epoch from e.timestamp) * 1000 as ms,
                    lag(extract(epoch from e.timestamp) * 1000) over (partition by e.profile_id order by e.timestamp) as previous
               from events e
               join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id and p.merged_into is null
              where e.workspace_id = $1 and e.type = 'track' and e.event = $2 and e.timestamp < $3 and e.profile_id is not null) x
      group by profile_id`,
    [workspaceId, event, until, gapDays],
  );
  return new Map(
    rows.map((row) => [
      row.profile_id,
      { firstAt: Number(row.first_at), lastAt: Number(row.last_at), lastReturnAt: row.last_return_at === null ? null : Number(row.last_return_at) },
    ]),
  );
}

/** The behavioural features every propensity and lookalike model uses, in this order. */
export const BASE_FEATURES = [
  'days_since_last_event',
  'days_since_first_event',
  'events_7d',
  'events_30d',
  'events_90d',
  'active_days_30d',
  'purchases_365d',
  'revenue_365d',
  'days_since_last_purchase',
] as const;

export interface FeatureSet {
  names: string[];
  profiles: string[];
  rows: number[][];
}

/** The names of the most frequent (non-system, non-purchase) track events in the window: per-event count features. */
export async function topEventNames(db: Queryable, workspaceId: string, from: Date, until: Date, exclude: string, limit = 8): Promise<string[]> {
  const { rows } = await db.query<{ event: string }>(
    `select e.event from events e
      where e.workspace_id = $1 and e.timestamp >= $2 and e.timestamp < $3 and e.type = 'track' and e.event <> $4
        and e.source_id is distinct from (select id from sources where workspace_id = $1 and name = '$touchpoint')
      group by e.event order by count(*) desc, e.event limit $5`,
    [workspaceId, from, until, exclude, limit],
  );
  return rows.map((row) => row.event);
}

/**
 * Features at the cut `at` for every live profile with an event in the `lookbackDays` before it
 * (counts as log(1 + n), so one heavy user does not dominate a coefficient). The last year
 * before the cut is read.
 */
export async function loadBehaviourFeatures(
  db: Queryable,
  workspaceId: string,
  options: { at: Date; lookbackDays: number; purchaseEvent: string; revenueProperty: string; eventNames: readonly string[] },
): Promise<FeatureSet> {
  const windowDays = Math.max(365, options.lookbackDays);
  const from = new Date(options.at.getTime() - windowDays * DAY);
  const perEvent = options.eventNames.map((_, i) => `ln(1 + count(*) filter (where e.event = $${7 + i} and e.timestamp >= $2::timestamptz - interval '30 days'))`);
  const { rows } = await db.query<{ profile_id: string; f: number[] }>(
    `select e.profile_id, array[
            extract(epoch from ($2::timestamptz - max(e.timestamp))) / 86400,
            extract(epoch from ($2::timestamptz - min(e.timestamp))) / 86400,
            ln(1 + count(*) filter (where e.timestamp >= $2::timestamptz - interval '7 days')),
            ln(1 + count(*) filter (where e.timestamp >= $2::timestamptz - interval '30 days')),
            ln(1 + count(*) filter (where e.timestamp >= $2::timestamptz - interval '90 days')),
            count(distinct date_trunc('day', e.timestamp, 'UTC')) filter (where e.timestamp >= $2::timestamptz - interval '30 days'),
            ln(1 + count(*) filter (where e.type = 'track' and e.event = $4)),
            ln(1 + coalesce(sum(case when (e.properties #>> $5::text[]) ~ ${NUMERIC} and (e.properties #>> $5::text[])::float8 > 0
                                     then (e.properties #>> $5::text[])::float8 end) filter (where e.type = 'track' and e.event = $4), 0)),
            coalesce(extract(epoch from ($2::timestamptz - max(e.timestamp) filter (where e.type = 'track' and e.event = $4))) / 86400, $6::float8)
            ${perEvent.map((sql) => `, ${sql}`).join('')}
          ]::float8[] as f
       from events e
       join profiles p on p.workspace_id = e.workspace_id and p.id = e.profile_id and p.merged_into is null
      where e.workspace_id = $1 and e.timestamp >= $3 and e.timestamp < $2 and e.profile_id is not null
        and e.source_id is distinct from (select id from sources where workspace_id = $1 and name = '$touchpoint')
      group by e.profile_id
     having max(e.timestamp) >= $2::timestamptz - make_interval(days => $6::int)
      order by e.profile_id`,
    [workspaceId, options.at, from, options.purchaseEvent, pathOf(options.revenueProperty), options.lookbackDays, ...options.eventNames],
  );
  return {
    names: [...BASE_FEATURES, ...options.eventNames.map((name) => `events_30d:${name}`)],
    profiles: rows.map((row) => row.profile_id),
    rows: rows.map((row) => row.f.map(Number)),
  };
}

/** Per live profile: whether it had any (non-system) event and any purchase in [from, until). */
export async function loadOutcomes(
  db: Queryable,
  workspaceId: string,
  from: Date,
  until: Date,
  purchaseEvent: string,
): Promise<Map<string, { active: boolean; purchased: boolean }>> {
  const { rows } = await db.query<{ profile_id: string; purchased: boolean }>(
    `select e.profile_id, bool_or(e.type = 'track' and e.event = $4) as purchased
       from events e
      where e.workspace_id = $1 and e.timestamp >= $2 and e.timestamp < $3 and e.profile_id is not null
        and e.source_id is distinct from (select id from sources where workspace_id = $1 and name = '$touchpoint')
      group by e.profile_id`,
    [workspaceId, from, until, purchaseEvent],
  );
  return new Map(rows.map((row) => [row.profile_id, { active: true, purchased: row.purchased }]));
}

/** Current members of a segment (its key), for a lookalike's seed. */
export async function loadSegmentMembers(db: Queryable, workspaceId: string, segmentKey: string): Promise<Set<string> | null> {
  const { rows: segment } = await db.query<{ id: string }>(`select id from segments where workspace_id = $1 and key = $2 and status <> 'archived'`, [
    workspaceId,
    segmentKey,
  ]);
  if (!segment[0]) return null;
  const { rows } = await db.query<{ profile_id: string }>(`select profile_id from segment_memberships where workspace_id = $1 and segment_id = $2`, [
    workspaceId,
    segment[0].id,
  ]);
  return new Set(rows.map((row) => row.profile_id));
}

/** Live profiles' current values of the given traits (null values left out). */
export async function loadTraitValues(db: Queryable, workspaceId: string, keys: readonly string[]): Promise<Map<string, Map<string, unknown>>> {
  const values = new Map<string, Map<string, unknown>>();
  if (keys.length === 0) return values;
  const { rows } = await db.query<{ profile_id: string; key: string; value: unknown }>(
    `select t.profile_id, t.key, t.value
       from profile_traits t
       join profiles p on p.workspace_id = t.workspace_id and p.id = t.profile_id and p.merged_into is null
      where t.workspace_id = $1 and t.key = any($2::text[]) and jsonb_typeof(t.value) <> 'null'`,
    [workspaceId, keys],
  );
  for (const row of rows) {
    let byKey = values.get(row.profile_id);
    if (!byKey) values.set(row.profile_id, (byKey = new Map()));
    byKey.set(row.key, row.value);
  }
  return values;
}
