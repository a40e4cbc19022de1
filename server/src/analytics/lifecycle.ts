import { Type, type Static } from '@sinclair/typebox';
import { ApiError } from '../api/errors.ts';
import type { Db } from '../storage/database.ts';
import { EventSelectorSchema, PERIOD_FORMAT, QueryBaseProperties, instantOfLocal, nextPeriod, periodLabel, periodLabels, type EventSelector } from './definition.ts';
import { flagUnknownEvents, reportContext, runBudgeted, type ReportContext } from './run.ts';
import { breakdownSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';
import { columnarLifecycle, columnarLifecycleSupport, type LifecycleRow, type LifecycleStatus } from './columnar/lifecycle.ts';
import { activeColumnarStore, type ColumnarStore } from './columnar/store.ts';

/*
 * Lifecycle: per local period, how the active profiles split into new / returning / resurrecting,
 * and how many went dormant. "Active in a period" = at least one activity event in it (the given
 * selectors, or any track/page/screen action). For a period P and a profile:
 *   new           active in P, and P is the period of its first activity event ever;
 *   returning     active in P and in the period before P (and not new);
 *   resurrecting  active in P, not in the period before, but in some earlier one;
 *   dormant       active in the period before P, not in P.
 * Activity counts over whole periods: the first and last periods of the range are read entirely
 * (and the period before the first, for its returning/dormant split); "first ever" reads all history.
 */

export const LifecycleQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    events: Type.Optional(
      Type.Array(EventSelectorSchema, {
        minItems: 1,
        maxItems: 10,
        description: 'What counts as activity (any of these); absent: every track, page and screen event',
      }),
    ),
    interval: Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month')]),
    breakdown: Type.Optional(
      Type.Object({ kind: Type.Literal('trait'), trait: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false, description: "The profile's current trait" }),
    ),
  },
  { additionalProperties: false },
);
export type LifecycleQuery = Static<typeof LifecycleQuerySchema>;

const PeriodCounts = Type.Object({
  period: Type.String({ description: 'First day of the period (workspace time zone)' }),
  new: Type.Integer(),
  returning: Type.Integer(),
  resurrecting: Type.Integer(),
  dormant: Type.Integer({ description: 'Active in the period before, not in this one (a positive count; charts draw it below zero)' }),
  active: Type.Integer({ description: 'new + returning + resurrecting' }),
  quickRatio: Type.Union([Type.Number(), Type.Null()], { description: '(new + resurrecting) ÷ dormant; null when nobody went dormant' }),
});

export const LifecycleResultSchema = Type.Object({
  periods: Type.Array(PeriodCounts),
  breakdown: Type.Optional(Type.Array(Type.Object({ value: Type.Union([Type.String(), Type.Null()]), periods: Type.Array(PeriodCounts) }))),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
  range: Type.Object({ from: Type.String(), to: Type.String(), timeZone: Type.String() }),
  engine: Type.Optional(
    Type.Object({
      name: Type.Union([Type.Literal('postgres'), Type.Literal('columnar')]),
      freshAsOf: Type.Optional(Type.String({ description: 'columnar: when the copy last caught up with PostgreSQL' })),
      reason: Type.Optional(Type.String({ description: 'postgres: why the columnar engine did not answer' })),
    }),
  ),
});
export type LifecycleResult = Static<typeof LifecycleResultSchema>;

type Status = LifecycleStatus;
export const LIFECYCLE_STATUSES: readonly Status[] = ['new', 'returning', 'resurrecting', 'dormant'];

/** Reading one period at a time would be silly; a year of days is the most a lifecycle chart shows usefully. */
const MAX_PERIODS = 400;

/** The local period before `label` (day/week/month labels). */
export function previousPeriod(label: string, interval: LifecycleQuery['interval']): string {
  const [year, month, day] = label.split('-').map(Number) as [number, number, number];
  const pad = (n: number) => String(n).padStart(2, '0');
  if (interval === 'month') return month === 1 ? `${year - 1}-12-01` : `${year}-${pad(month - 1)}-01`;
  const moved = new Date(Date.UTC(year, month - 1, day - (interval === 'week' ? 7 : 1)));
  return `${moved.getUTCFullYear()}-${pad(moved.getUTCMonth() + 1)}-${pad(moved.getUTCDate())}`;
}

const instantOfLabel = (label: string, timeZone: string) => {
  const [year, month, day] = label.split('-').map(Number) as [number, number, number];
  return instantOfLocal({ year, month, day }, timeZone);
};

export interface LifecycleEngineOptions {
  /** The columnar copy to answer from (default: the process's active one, if any); null: PostgreSQL only. */
  columnar?: ColumnarStore | null;
}

export async function runLifecycle(db: Db, workspaceId: string, query: LifecycleQuery, now: Date, options: LifecycleEngineOptions = {}): Promise<LifecycleResult> {
  const context = await reportContext(db, workspaceId, query, now);
  const { timeZone } = context;
  const selectors: EventSelector[] = query.events ?? [];
  await flagUnknownEvents(
    context,
    selectors.map((selector, index) => ({ field: `events.${index}`, selector })),
  );
  let labels: string[];
  try {
    labels = periodLabels(context.range, query.interval, timeZone, MAX_PERIODS);
  } catch (error) {
    if (error instanceof RangeError) throw new ApiError(400, 'too_many_periods', error.message, 'interval');
    throw error;
  }
  const before = previousPeriod(labels[0]!, query.interval);
  const readFrom = instantOfLabel(before, timeZone);
  const readTo = instantOfLabel(nextPeriod(labels.at(-1)!, query.interval), timeZone);
  const store = options.columnar === undefined ? activeColumnarStore() : options.columnar;
  if (store?.syncBeforeRead) await store.catchUp(db);
  const declined = store ? (columnarLifecycleSupport(query) ?? store.staleness()) : 'no columnar copy';
  let rows: LifecycleRow[];
  let engine: NonNullable<LifecycleResult['engine']>;
  if (store && declined === null) {
    const periods = [before, ...labels].map((label) => ({ label, fromMs: instantOfLabel(label, timeZone), toMs: instantOfLabel(nextPeriod(label, query.interval), timeZone) }));
    rows = await columnarLifecycle(store, context, query, periods);
    engine = { name: 'columnar', freshAsOf: new Date(store.lastSync()!).toISOString() };
  } else {
    rows = await postgresLifecycle(db, context, query, labels, readFrom, readTo, now);
    engine = { name: 'postgres', ...(declined ? { reason: declined } : {}) };
  }
  const inRange = new Set(labels);
  const tables = new Map<string | null, Map<string, Record<Status, number>>>();
  for (const row of rows) {
    if (!inRange.has(row.period)) continue;
    const key = query.breakdown ? row.bd : null;
    let table = tables.get(key);
    if (!table) tables.set(key, (table = new Map()));
    let counts = table.get(row.period);
    if (!counts) table.set(row.period, (counts = { new: 0, returning: 0, resurrecting: 0, dormant: 0 }));
    counts[row.status] += row.profiles;
  }
  // A period that has not begun yet has no dormant profiles: nobody could have been active in it.
  const current = periodLabel(now.getTime(), query.interval, timeZone);
  const periodsOf = (table: Map<string, Record<Status, number>> | undefined) =>
    labels.map((period) => {
      const counts = table?.get(period) ?? { new: 0, returning: 0, resurrecting: 0, dormant: 0 };
      const dormant = period > current ? 0 : counts.dormant;
      return {
        period,
        ...counts,
        dormant,
        active: counts.new + counts.returning + counts.resurrecting,
        quickRatio: dormant === 0 ? null : (counts.new + counts.resurrecting) / dormant,
      };
    });
  const total = new Map<string, Record<Status, number>>();
  for (const table of tables.values()) {
    for (const [period, counts] of table) {
      const sum = total.get(period) ?? { new: 0, returning: 0, resurrecting: 0, dormant: 0 };
      for (const status of LIFECYCLE_STATUSES) sum[status] += counts[status];
      total.set(period, sum);
    }
  }
  const result: LifecycleResult = {
    periods: periodsOf(total),
    warnings: context.warnings,
    range: { from: new Date(context.range.fromMs).toISOString(), to: new Date(context.range.toMs).toISOString(), timeZone },
    engine,
  };
  if (query.breakdown) {
    result.breakdown = [...tables.entries()]
      .map(([value, table]) => ({ value, periods: periodsOf(table) }))
      .sort((a, b) => sumActive(b.periods) - sumActive(a.periods) || String(a.value).localeCompare(String(b.value)));
  }
  return result;
}

const sumActive = (periods: ReadonlyArray<{ active: number }>) => periods.reduce((sum, period) => sum + period.active, 0);

async function postgresLifecycle(db: Db, context: ReportContext, query: LifecycleQuery, labels: readonly string[], readFrom: number, readTo: number, now: Date): Promise<LifecycleRow[]> {
  const { q } = context;
  const selectors: EventSelector[] = query.events ?? [];
  const activity = selectors.length > 0 ? `(${selectors.map((selector) => selectorSql(q, selector)).join(' or ')})` : `e.type in ('track', 'page', 'screen')`;
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', now);
  const filters = `e.workspace_id = ${q.workspace} and e.profile_id is not null and ${activity} and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}`;
  const interval = q.bind(query.interval, 'text');
  const step = q.bind(`1 ${query.interval}`, 'interval');
  const local = (column: string) => `date_trunc(${interval}, ${column} at time zone ${q.timeZone})`;
  const format = q.bind(PERIOD_FORMAT[query.interval], 'text');
  const firstLabel = q.bind(labels[0], 'text');
  const toParam = q.bind(new Date(readTo).toISOString(), 'timestamptz');
  const bd = query.breakdown ? breakdownSql(q, query.breakdown, 'a') : 'null::text';
  // Per profile and active period in the window read (the period before the range included):
  // the active periods before and after it. A profile's first period in the window is new unless
  // it was active before the window — one index probe (events_profile_timeline) per such profile,
  // not a pass over all history.
  const text = `
    with active as materialized (
      select e.profile_id, ${local('e.timestamp')} as period
        from events e
       where ${filters} and e.timestamp >= ${q.bind(new Date(readFrom).toISOString(), 'timestamptz')} and e.timestamp < ${toParam}
       group by 1, 2
    ),
    marked as (
      select a.profile_id, a.period, lag(a.period) over w as prev, lead(a.period) over w as next, ${bd} as bd
        from active a
      window w as (partition by a.profile_id order by a.period)
    ),
    statuses as (
      select to_char(m.period, ${format}) as period, m.bd,
             case when m.prev = m.period - ${step} then 'returning'
                  when m.prev is not null then 'resurrecting'
                  when exists (select 1 from events e where ${filters} and e.profile_id = m.profile_id and e.timestamp < ${q.bind(new Date(readFrom).toISOString(), 'timestamptz')})
                    then 'resurrecting'
                  else 'new' end as status
        from marked m where to_char(m.period, ${format}) >= ${firstLabel}
      union all
      select to_char(m.period + ${step}, ${format}), m.bd, 'dormant'
        from marked m where m.next is null or m.next > m.period + ${step}
    )
    select period, bd, status, count(*)::int as profiles from statuses group by 1, 2, 3`;
  return runBudgeted<LifecycleRow>(context, text);
}
