import { Type, type Static } from '@sinclair/typebox';
import type { Db } from '../storage/database.ts';
import { BreakdownSchema, EventSelectorSchema, PERIOD_FORMAT, QueryBaseProperties, nextPeriod, periodLabel } from './definition.ts';
import { conversionRate } from './stats.ts';
import { flagUnknownEvents, reportContext, runBudgeted } from './run.ts';
import { breakdownSql, rangeSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';

export const MAX_RETENTION_PERIODS = 60;

export const RetentionQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    startEvent: EventSelectorSchema,
    returnEvent: EventSelectorSchema,
    cohort: Type.Optional(
      Type.Union([Type.Literal('first_time'), Type.Literal('recurring')], {
        default: 'first_time',
        description: "first_time: a profile's cohort is the period of its first start event ever (kept when that is in the range); recurring: every period in the range with a start event",
      }),
    ),
    interval: Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month')]),
    periods: Type.Integer({ minimum: 1, maximum: MAX_RETENTION_PERIODS, description: 'Periods after the cohort period to report' }),
    mode: Type.Optional(
      Type.Union([Type.Literal('on'), Type.Literal('on_or_after')], {
        default: 'on',
        description: 'on: returned in exactly period k; on_or_after: returned in period k or any later one',
      }),
    ),
    breakdown: Type.Optional(BreakdownSchema),
  },
  { additionalProperties: false },
);
export type RetentionQuery = Static<typeof RetentionQuerySchema>;

export const RetentionResultSchema = Type.Object({
  cohorts: Type.Array(
    Type.Object({
      cohort: Type.String({ description: 'First day of the cohort period (workspace time zone)' }),
      breakdownValue: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      size: Type.Integer(),
      retained: Type.Array(Type.Union([Type.Integer(), Type.Null()]), { description: 'Index k: profiles returned in period k; null for a period not yet begun' }),
      rates: Type.Array(Type.Union([Type.Number(), Type.Null()])),
    }),
  ),
  average: Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: 'Size-weighted rate per period over the cohorts that reached it' }),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
  range: Type.Object({ from: Type.String(), to: Type.String(), timeZone: Type.String() }),
});
export type RetentionResult = Static<typeof RetentionResultSchema>;

const MAX_PERIOD_DAYS = { day: 1, week: 7, month: 31 } as const;

/** The whole periods from local period start `cohort` to `period` (SQL over local timestamps). */
function periodIndexSql(interval: RetentionQuery['interval'], cohort: string, period: string): string {
  if (interval === 'month') return `((extract(year from ${period}) - extract(year from ${cohort})) * 12 + extract(month from ${period}) - extract(month from ${cohort}))::int`;
  const days = `(${period}::date - ${cohort}::date)`;
  return interval === 'week' ? `(${days} / 7)` : days;
}

export async function runRetention(db: Db, workspaceId: string, query: RetentionQuery, now: Date): Promise<RetentionResult> {
  const context = await reportContext(db, workspaceId, query, now);
  const { q } = context;
  await flagUnknownEvents(context, [
    { field: 'startEvent', selector: query.startEvent },
    { field: 'returnEvent', selector: query.returnEvent },
  ]);
  const interval = q.bind(query.interval, 'text');
  const local = (column: string) => `date_trunc(${interval}, ${column} at time zone ${q.timeZone})`;
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', now);
  const filters = `e.workspace_id = ${q.workspace} and e.profile_id is not null and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}`;
  const bd = breakdownSql(q, query.breakdown);
  const firstTime = (query.cohort ?? 'first_time') === 'first_time';
  const cohorts = firstTime
    ? `select profile_id, ${local('first_at')} as cohort, bd from (
         select distinct on (e.profile_id) e.profile_id, e.timestamp as first_at, ${bd} as bd
           from events e
          where ${filters} and ${selectorSql(q, query.startEvent)} and e.timestamp < ${q.bind(new Date(context.range.toMs).toISOString(), 'timestamptz')}
          order by e.profile_id, e.timestamp, e.seq
       ) as firsts where first_at >= ${q.bind(new Date(context.range.fromMs).toISOString(), 'timestamptz')}`
    : `select e.profile_id, ${local('e.timestamp')} as cohort, min(${bd}) as bd
         from events e where ${filters} and ${selectorSql(q, query.startEvent)} and ${rangeSql(q, context.range)}
        group by 1, 2`;
  const horizonMs = (query.periods + 1) * MAX_PERIOD_DAYS[query.interval] * 86_400_000;
  const index = periodIndexSql(query.interval, 'c.cohort', 'r.period');
  const text = `
    with cohorts as (${cohorts}),
    returns as (
      select distinct e.profile_id, ${local('e.timestamp')} as period
        from events e
       where ${filters} and ${selectorSql(q, query.returnEvent)} and ${rangeSql(q, context.range, 'e', horizonMs)}
    ),
    hits as (
      select c.profile_id, c.cohort, c.bd, ${index} as k
        from cohorts c join returns r on r.profile_id = c.profile_id
       where r.period >= c.cohort and ${index} <= ${query.periods}
    ),
    per_profile as (
      select profile_id, cohort, bd, ${query.mode === 'on_or_after' ? 'max(k)' : 'null::int'} as last_k, array_agg(distinct k) as ks
        from hits group by 1, 2, 3
    ),
    counts as (
      select cohort, bd, k, count(*)::int as retained
        from per_profile, generate_series(0, ${query.periods}) as k
       where ${query.mode === 'on_or_after' ? 'last_k >= k' : 'k = any(ks)'}
       group by 1, 2, 3
    )
    select to_char(c.cohort, ${q.bind(PERIOD_FORMAT[query.interval], 'text')}) as cohort, c.bd, count(*)::int as size,
           coalesce((select jsonb_object_agg(k, retained) from counts x where x.cohort = c.cohort and x.bd is not distinct from c.bd), '{}') as retained
      from cohorts c group by c.cohort, c.bd order by c.cohort, size desc`;
  const rows = await runBudgeted<{ cohort: string; bd: string | null; size: number; retained: Record<string, number> }>(context, text);
  const current = periodLabel(now.getTime(), query.interval, context.timeZone);
  const cohortsOut = rows.map((row) => {
    const retained: Array<number | null> = [];
    let label = row.cohort;
    for (let k = 0; k <= query.periods; k++) {
      retained.push(label > current ? null : (row.retained[String(k)] ?? 0));
      label = nextPeriod(label, query.interval);
    }
    return {
      cohort: row.cohort,
      ...(query.breakdown ? { breakdownValue: row.bd } : {}),
      size: row.size,
      retained,
      rates: retained.map((count) => (count === null ? null : conversionRate(count, row.size))),
    };
  });
  const average = Array.from({ length: query.periods + 1 }, (_, k) => {
    const reached = cohortsOut.filter((cohort) => cohort.retained[k] !== null);
    const size = reached.reduce((sum, cohort) => sum + cohort.size, 0);
    return reached.length === 0 ? null : conversionRate(reached.reduce((sum, cohort) => sum + cohort.retained[k]!, 0), size);
  });
  return {
    cohorts: cohortsOut,
    average,
    warnings: context.warnings,
    range: { from: new Date(context.range.fromMs).toISOString(), to: new Date(context.range.toMs).toISOString(), timeZone: context.timeZone },
  };
}
