import { Type, type Static } from '@sinclair/typebox';
import { ApiError } from '../api/errors.ts';
import { numberOf } from '../segments/sql/values.ts';
import type { Db, Queryable } from '../storage/database.ts';
import { BreakdownSchema, EventSelectorSchema, IntervalSchema, PERIOD_FORMAT, QueryBaseProperties, periodLabels, selectorLabel, type EventSelector } from './definition.ts';
import { evaluateFormula, FormulaError, parseFormula } from './formula.ts';
import { flagUnknownEvents, reportContext, runBudgeted, type ReportContext } from './run.ts';
import { breakdownSql, eventPathSql, periodSql, rangeSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';

const MEASURES = ['total', 'unique', 'per_profile', 'sum', 'avg', 'min', 'max', 'p50', 'p75', 'p90', 'p99'] as const;
type Measure = (typeof MEASURES)[number];
const NEEDS_PROPERTY = new Set<Measure>(['sum', 'avg', 'min', 'max', 'p50', 'p75', 'p90', 'p99']);

export const TrendQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    series: Type.Array(
      Type.Object(
        {
          event: Type.Optional(EventSelectorSchema),
          metric: Type.Optional(
            Type.Object(
              {
                key: Type.String({ minLength: 1, maxLength: 64, description: 'A saved one-series trend report: its event, measure and property' }),
                version: Type.Optional(Type.Integer({ minimum: 1, description: 'An earlier version of the metric; default its current one' })),
              },
              { additionalProperties: false, description: 'Instead of event/measure/property: a named metric defined once (a saved trend with one series)' },
            ),
          ),
          measure: Type.Optional(
            Type.Union(
              MEASURES.map((m) => Type.Literal(m)),
              { default: 'total', description: 'total events, unique profiles, events per profile, or an aggregate of a numeric property' },
            ),
          ),
          property: Type.Optional(Type.String({ minLength: 1, maxLength: 300, description: 'The numeric property sum/avg/min/max/percentiles read' })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 10 },
    ),
    interval: IntervalSchema,
    breakdown: Type.Optional(BreakdownSchema),
    breakdownLimit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
    formulas: Type.Optional(
      Type.Array(
        Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }), expression: Type.String({ minLength: 1, maxLength: 500, description: 'e.g. "B / A * 100"; A is the first series' }) }, { additionalProperties: false }),
        { maxItems: 5 },
      ),
    ),
  },
  { additionalProperties: false },
);
export type TrendQuery = Static<typeof TrendQuerySchema>;

const Values = Type.Array(Type.Union([Type.Number(), Type.Null()]));
export const TrendResultSchema = Type.Object({
  periods: Type.Array(Type.String()),
  series: Type.Array(
    Type.Object({
      key: Type.String(),
      label: Type.String(),
      measure: Type.String(),
      breakdownValue: Type.Optional(Type.Union([Type.String(), Type.Null()])),
      values: Values,
      total: Type.Union([Type.Number(), Type.Null()]),
    }),
  ),
  formulas: Type.Array(Type.Object({ name: Type.String(), expression: Type.String(), breakdownValue: Type.Optional(Type.Union([Type.String(), Type.Null()])), values: Values })),
  breakdownTruncated: Type.Boolean(),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
  range: Type.Object({ from: Type.String(), to: Type.String(), timeZone: Type.String() }),
});
export type TrendResult = Static<typeof TrendResultSchema>;

function aggregateSql(measure: Measure): string {
  switch (measure) {
    case 'total':
      return 'count(*)::float8';
    case 'unique':
      return 'count(distinct profile_id)::float8';
    case 'per_profile':
      return 'count(*)::float8 / nullif(count(distinct profile_id), 0)';
    case 'sum':
      return 'coalesce(sum(num), 0)';
    case 'avg':
    case 'min':
    case 'max':
      return `${measure}(num)`;
    default:
      return `percentile_cont(${Number(measure.slice(1)) / 100}) within group (order by num)`;
  }
}

type Series = TrendQuery['series'][number];
/** A series with its event known: given inline, or read from the metric it names. */
type ResolvedSeries = Omit<Series, 'event' | 'metric'> & { event: EventSelector };
type ResolvedTrendQuery = Omit<TrendQuery, 'series'> & { series: ResolvedSeries[] };

/**
 * Replaces each `metric` series by the series of the saved trend it names (its current version,
 * or the one asked for), labelled with the metric's name: one definition of "GMV" for every query.
 * The metric's own range, segment and breakdown are not used; the query's are.
 */
export async function resolveMetricSeries(db: Queryable, workspaceId: string, query: TrendQuery): Promise<{ query: ResolvedTrendQuery; labels: string[] }> {
  const labels: string[] = [];
  const series: ResolvedSeries[] = [];
  for (const [index, item] of query.series.entries()) {
    const { metric, event, ...rest } = item;
    if ((metric === undefined) === (event === undefined)) throw new ApiError(400, 'invalid_request', 'Give a series either an event or a metric', `series.${index}`);
    if (event !== undefined) {
      series.push({ ...rest, event });
      labels.push(selectorLabel(event));
      continue;
    }
    const field = `series.${index}.metric`;
    if (rest.measure !== undefined || rest.property !== undefined) throw new ApiError(400, 'invalid_request', 'A metric brings its own measure and property', field);
    const { rows } = await db.query<{ name: string; kind: string; status: string; definition: { series?: Series[] } | null }>(
      `select r.name, r.kind, r.status, case when $3::int is null then r.definition else v.definition end as definition
         from analytics_reports r
         left join analytics_report_versions v on v.workspace_id = r.workspace_id and v.report_id = r.id and v.version = $3::int
        where r.workspace_id = $1 and r.key = $2`,
      [workspaceId, metric!.key, metric!.version ?? null],
    );
    const report = rows[0];
    if (!report || report.status === 'archived') throw new ApiError(400, 'unknown_metric', `No live saved report "${metric!.key}" in this workspace`, `${field}.key`);
    if (!report.definition) throw new ApiError(400, 'unknown_metric', `Metric "${metric!.key}" has no version ${metric!.version}`, `${field}.version`);
    const defined = report.definition.series;
    if (report.kind !== 'trend' || defined?.length !== 1 || defined[0]!.event === undefined) {
      throw new ApiError(400, 'invalid_metric', `"${metric!.key}" is not a metric: a metric is a saved trend with one series of an event`, `${field}.key`);
    }
    const { event: metricEvent, measure, property } = defined[0]!;
    series.push({ event: metricEvent!, ...(measure !== undefined ? { measure } : {}), ...(property !== undefined ? { property } : {}) });
    labels.push(report.name);
  }
  return { query: { ...query, series }, labels };
}

interface SeriesRow {
  period: string | null;
  bd: string | null;
  value: number | null;
}

/** One series over the range: its value per (period, breakdown value) and per breakdown value over the whole range. */
async function seriesRows(context: ReportContext, query: ResolvedTrendQuery, index: number, segment: string): Promise<SeriesRow[]> {
  const { q } = context;
  const series = query.series[index]!;
  const measure = series.measure ?? 'total';
  const number = series.property ? numberOf(eventPathSql(q, series.property)) : 'null::float8';
  const text = `
    select period, bd, ${aggregateSql(measure)} as value
      from (
        select e.profile_id, ${periodSql(q, query.interval, PERIOD_FORMAT[query.interval])} as period, ${breakdownSql(q, query.breakdown)} as bd, ${number} as num
          from events e
         where e.workspace_id = ${q.workspace} and ${rangeSql(q, context.range)} and e.profile_id is not null
           and ${selectorSql(q, series.event)} and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}
      ) as x
     group by grouping sets ((period, bd), (bd))`;
  return runBudgeted<SeriesRow>(context, text, [...q.values]);
}

export async function runTrend(db: Db, workspaceId: string, input: TrendQuery, now: Date): Promise<TrendResult> {
  const { query, labels } = await resolveMetricSeries(db, workspaceId, input);
  query.series.forEach((series, index) => {
    if (NEEDS_PROPERTY.has(series.measure ?? 'total') && !series.property) {
      throw new ApiError(400, 'invalid_request', `The ${series.measure} measure needs a numeric property`, `series.${index}.property`);
    }
  });
  const formulas = (query.formulas ?? []).map((formula, index) => {
    try {
      return { ...formula, parsed: parseFormula(formula.expression, query.series.length) };
    } catch (error) {
      if (error instanceof FormulaError) throw new ApiError(400, 'invalid_formula', error.message, `formulas.${index}.expression`);
      throw error;
    }
  });
  const context = await reportContext(db, workspaceId, query, now);
  let periods: string[];
  try {
    periods = periodLabels(context.range, query.interval, context.timeZone);
  } catch (error) {
    throw new ApiError(400, 'too_many_periods', (error as Error).message, 'interval');
  }
  await flagUnknownEvents(context, query.series.map((series, index) => ({ field: `series.${index}.event`, selector: series.event })));
  // Each series binds its own parameters after the shared ones (workspace, segment filter).
  const segment = await segmentFilterSql(db, context.q, query.segment, 'e.profile_id', now);
  void context.q.timeZone; // bound once here, before the per-series parameters that are reset below
  const shared = context.q.values.length;
  const rowsPerSeries: SeriesRow[][] = [];
  for (let index = 0; index < query.series.length; index++) {
    context.q.values.splice(shared);
    rowsPerSeries.push(await seriesRows(context, query, index, segment));
  }
  const periodIndex = new Map(periods.map((period, index) => [period, index]));
  const zero = (measure: Measure) => (measure === 'total' || measure === 'unique' || measure === 'sum' ? 0 : null);
  // Breakdown values ranked by the first series' total over the range.
  const totals = rowsPerSeries[0]!.filter((row) => row.period === null);
  const ranked = totals.sort((a, b) => (b.value ?? 0) - (a.value ?? 0) || String(a.bd).localeCompare(String(b.bd))).map((row) => row.bd);
  const limit = query.breakdown ? (query.breakdownLimit ?? 10) : 1;
  const values = query.breakdown ? ranked.slice(0, limit) : [null];
  const result: TrendResult = {
    periods,
    series: [],
    formulas: [],
    breakdownTruncated: query.breakdown ? ranked.length > limit : false,
    warnings: context.warnings,
    range: { from: new Date(context.range.fromMs).toISOString(), to: new Date(context.range.toMs).toISOString(), timeZone: context.timeZone },
  };
  const perValue = new Map<string | null, Array<Array<number | null>>>();
  for (const value of values) {
    const allSeries: Array<Array<number | null>> = [];
    query.series.forEach((series, index) => {
      const measure = series.measure ?? 'total';
      const points: Array<number | null> = periods.map(() => zero(measure));
      let total: number | null = zero(measure);
      for (const row of rowsPerSeries[index]!) {
        if (row.bd !== value) continue;
        if (row.period === null) total = row.value === null ? null : Number(row.value);
        else if (periodIndex.has(row.period)) points[periodIndex.get(row.period)!] = row.value === null ? null : Number(row.value);
      }
      allSeries.push(points);
      result.series.push({
        key: String.fromCharCode(65 + index),
        label: labels[index]!,
        measure,
        ...(query.breakdown ? { breakdownValue: value } : {}),
        values: points,
        total,
      });
    });
    perValue.set(value, allSeries);
  }
  for (const formula of formulas) {
    for (const value of values) {
      const allSeries = perValue.get(value)!;
      result.formulas.push({
        name: formula.name,
        expression: formula.expression,
        ...(query.breakdown ? { breakdownValue: value } : {}),
        values: periods.map((_, p) => evaluateFormula(formula.parsed, allSeries.map((points) => points[p] ?? null))),
      });
    }
  }
  return result;
}
