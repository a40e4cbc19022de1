import { Type, type Static } from '@sinclair/typebox';
import { ApiError } from '../api/errors.ts';
import type { Db } from '../storage/database.ts';
import {
  BreakdownSchema,
  EventSelectorSchema,
  type EventSelector,
  IntervalSchema,
  PERIOD_FORMAT,
  QueryBaseProperties,
  WindowSchema,
  selectorLabel,
  windowInterval,
  windowMs,
} from './definition.ts';
import { conversionRate, TIME_TO_CONVERT_BUCKETS } from './stats.ts';
import { flagUnknownEvents, reportContext, runBudgeted, type ReportContext } from './run.ts';
import { columnarFunnel, columnarFunnelSupport } from './columnar/funnel.ts';
import { activeColumnarStore, type ColumnarStore } from './columnar/store.ts';
import { breakdownSql, periodSql, piiTokenOf, rangeSql, segmentFilterSql, selectorSql, sourceKindsSql, type QuerySql } from './sql.ts';
import { sealedFieldOf } from '../privacy/pii-hashes.ts';

export const MAX_FUNNEL_STEPS = 20;
const MAX_EXCLUSIONS = 10;

export const FunnelQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    steps: Type.Array(EventSelectorSchema, { minItems: 2, maxItems: MAX_FUNNEL_STEPS }),
    order: Type.Optional(
      Type.Union([Type.Literal('sequential'), Type.Literal('strict'), Type.Literal('any')], {
        default: 'sequential',
        description: 'sequential: steps in order, other events allowed between; strict: no other event between steps; any: steps in any order',
      }),
    ),
    conversionWindow: Type.Optional(WindowSchema),
    exclusions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            event: EventSelectorSchema,
            fromStep: Type.Integer({ minimum: 1, maximum: MAX_FUNNEL_STEPS, description: '1-based' }),
            toStep: Type.Integer({ minimum: 2, maximum: MAX_FUNNEL_STEPS, description: '1-based' }),
          },
          { additionalProperties: false },
        ),
        { maxItems: MAX_EXCLUSIONS, description: 'An attempt with this event between fromStep and toStep does not count' },
      ),
    ),
    breakdown: Type.Optional(BreakdownSchema),
    breakdownAttribution: Type.Optional(
      Type.Union([Type.Literal('first_touch'), Type.Literal('last_touch'), Type.Integer({ minimum: 1, maximum: MAX_FUNNEL_STEPS })], {
        description: "Whose event's value a profile is counted under: step 1's (default), the last step reached, or step N's",
      }),
    ),
    breakdownLimit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 25 })),
    trendInterval: Type.Optional(IntervalSchema),
    dropOff: Type.Optional(
      Type.Object(
        {
          step: Type.Integer({ minimum: 1, maximum: MAX_FUNNEL_STEPS - 1, description: 'Profiles that reached this step (1-based) and not the next' }),
          breakdownValue: Type.Optional(Type.Union([Type.String(), Type.Null()])),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 1000 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type FunnelQuery = Static<typeof FunnelQuerySchema>;

const StepResult = Type.Object({
  step: Type.Integer(),
  label: Type.String(),
  count: Type.Integer(),
  conversionFromFirst: Type.Number(),
  conversionFromPrevious: Type.Number(),
  droppedFromPrevious: Type.Integer(),
  medianSecondsFromPrevious: Type.Union([Type.Number(), Type.Null()]),
  averageSecondsFromPrevious: Type.Union([Type.Number(), Type.Null()]),
});
export const FunnelResultSchema = Type.Object({
  steps: Type.Array(StepResult),
  timeToConvert: Type.Object({
    converted: Type.Integer(),
    medianSeconds: Type.Union([Type.Number(), Type.Null()]),
    p90Seconds: Type.Union([Type.Number(), Type.Null()]),
    distribution: Type.Array(Type.Object({ upToSeconds: Type.Union([Type.Number(), Type.Null()]), count: Type.Integer() })),
  }),
  breakdown: Type.Optional(Type.Array(Type.Object({ value: Type.Union([Type.String(), Type.Null()]), steps: Type.Array(StepResult) }))),
  breakdownTruncated: Type.Optional(Type.Boolean()),
  trend: Type.Optional(
    Type.Array(Type.Object({ period: Type.String(), started: Type.Integer(), converted: Type.Integer(), conversionRate: Type.Number() })),
  ),
  dropOff: Type.Optional(Type.Object({ step: Type.Integer(), profileIds: Type.Array(Type.String()), truncated: Type.Boolean() })),
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
export type FunnelResult = Static<typeof FunnelResultSchema>;

/** Refuses what cannot be answered, naming the field. */
function checkFunnel(query: FunnelQuery): void {
  if (query.steps.length > MAX_FUNNEL_STEPS) throw new ApiError(400, 'too_many_steps', `A funnel has at most ${MAX_FUNNEL_STEPS} steps`, 'steps');
  (query.exclusions ?? []).forEach((exclusion, index) => {
    if (exclusion.toStep <= exclusion.fromStep) throw new ApiError(400, 'invalid_request', 'toStep must be after fromStep', `exclusions.${index}.toStep`);
    if (exclusion.toStep > query.steps.length) throw new ApiError(400, 'invalid_request', `The funnel has ${query.steps.length} steps`, `exclusions.${index}.toStep`);
  });
  const attribution = query.breakdownAttribution;
  if (typeof attribution === 'number' && attribution > query.steps.length) {
    throw new ApiError(400, 'invalid_request', `The funnel has ${query.steps.length} steps`, 'breakdownAttribution');
  }
  if (query.dropOff && query.dropOff.step >= query.steps.length) {
    throw new ApiError(400, 'invalid_request', `Profiles can drop off after steps 1–${query.steps.length - 1}`, 'dropOff.step');
  }
  const value = query.dropOff?.breakdownValue;
  if (query.breakdown?.kind === 'property' && sealedFieldOf(query.breakdown.property) && typeof value === 'string' && /\*{3}/.test(value)) {
    // A masked label (what callers without pii.read see) names no group: it would silently match nobody.
    throw new ApiError(400, 'masked_value', `${query.breakdown.property} is personal data: name the group by its whole value, not its masked label`, 'dropOff.breakdownValue');
  }
}

interface FunnelRow {
  overall: boolean;
  by_breakdown: boolean;
  bd: string | null;
  period: string | null;
  [column: string]: unknown;
}

/**
 * The per-profile funnel query: candidate events (those matching any step or exclusion, or every
 * event in strict order) in the range extended by the conversion window, aggregated per profile
 * into ordered arrays, matched by analytics_funnel_match (0040), then counted.
 */
export async function funnelSql(context: ReportContext, query: FunnelQuery): Promise<{ reachedCte: string; n: number }> {
  const { q } = context;
  const n = query.steps.length;
  const order = query.order ?? 'sequential';
  const window = query.conversionWindow ?? { amount: 14, unit: 'days' as const };
  const exclusions = query.exclusions ?? [];
  const stepTests = query.steps.map((step) => selectorSql(q, step));
  const exclusionTests = exclusions.map((exclusion) => selectorSql(q, exclusion.event));
  const mask = [
    ...stepTests.map((test, k) => `(case when ${test} then ${2 ** k} else 0 end)`),
    ...exclusionTests.map((test, x) => `(case when ${test} then ${2 ** (20 + x)}::bigint else 0 end)`),
  ].join(' | ');
  // Strict order looks at every action (track, page, screen), not at identify/alias/group calls.
  const candidate = order === 'strict' ? `e.type in ('track', 'page', 'screen')` : `(${[...stepTests, ...exclusionTests].join(' or ')})${namesSql(q, [...query.steps, ...exclusions.map((x) => x.event)])}`;
  const attribution = query.breakdownAttribution ?? 'first_touch';
  const bdIndex = attribution === 'first_touch' ? 'hit[1]' : attribution === 'last_touch' ? 'hit[cardinality(hit)]' : `hit[${attribution}]`;
  const segment = await segmentFilterSql(context.db, q, query.segment, 'e.profile_id', context.now);
  const matchFn = `analytics_funnel_match(ts, masks, ${n}, ${q.bind(windowInterval(window), 'interval')}, ${q.bind(order, 'text')}, ${q.bind(
    new Date(context.range.toMs).toISOString(),
    'timestamptz',
  )}, ${q.bind(
    exclusions.map((x) => x.fromStep - 1),
    'int[]',
  )}, ${q.bind(
    exclusions.map((x) => x.toStep - 1),
    'int[]',
  )})`;
  const stepTimes = Array.from({ length: n }, (_, k) => `ts[hit[${k + 1}]] as t${k + 1}`).join(', ');
  const reachedCte = `
    matched as (
      select e.profile_id, e.timestamp, e.seq, (${mask})::bigint as mask, ${breakdownSql(q, query.breakdown)} as bd
        from events e
       where e.workspace_id = ${q.workspace} and ${rangeSql(q, context.range, 'e', windowMs(window))}
         and e.profile_id is not null and ${candidate} and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}
    ),
    per_profile as (
      select profile_id, array_agg(timestamp order by timestamp, seq) as ts, array_agg(mask order by timestamp, seq) as masks,
             array_agg(bd order by timestamp, seq) as bds
        from matched group by profile_id
    ),
    matches as materialized (select profile_id, ts, bds, ${matchFn} as hit from per_profile),
    reached as (
      select profile_id, cardinality(hit) as reached, bds[${bdIndex}] as bd, ${stepTimes}
        from matches where cardinality(hit) > 0
    )`;
  return { reachedCte, n };
}

/**
 * When every selector is a named track event, the redundant `e.event = any(names)` lets PostgreSQL
 * read only those names from the events_analytics index (0041: event, time, profile, seq, type,
 * source), without touching the wide event rows unless a filter or breakdown reads properties.
 */
export function namesSql(q: QuerySql, selectors: readonly EventSelector[]): string {
  if (selectors.some((selector) => (selector.type ?? 'track') !== 'track' || selector.event === undefined)) return '';
  return ` and e.event = any(${q.bind([...new Set(selectors.map((selector) => selector.event!))], 'text[]')})`;
}

export interface FunnelEngineOptions {
  /** The columnar copy to answer from (default: the process's active one, if any); null: PostgreSQL only. */
  columnar?: ColumnarStore | null;
}

export async function runFunnel(db: Db, workspaceId: string, query: FunnelQuery, now: Date, options: FunnelEngineOptions = {}): Promise<FunnelResult> {
  checkFunnel(query);
  const context = await reportContext(db, workspaceId, query, now);
  await flagUnknownEvents(context, [
    ...query.steps.map((selector, index) => ({ field: `steps.${index}`, selector })),
    ...(query.exclusions ?? []).map((exclusion, index) => ({ field: `exclusions.${index}.event`, selector: exclusion.event })),
  ]);
  const store = options.columnar === undefined ? activeColumnarStore() : options.columnar;
  if (store?.syncBeforeRead) await store.catchUp(db);
  const declined = store ? (columnarFunnelSupport(query) ?? store.staleness()) : 'no columnar copy';
  if (store && declined === null) {
    const answer = await columnarFunnel(store, context, query);
    const result = shapeFunnel(context, query, answer.rows as FunnelRow[]);
    if (query.dropOff) {
      const limit = query.dropOff.limit ?? 1000;
      const ids = answer.dropOffProfileIds ?? [];
      result.dropOff = { step: query.dropOff.step, profileIds: ids.slice(0, limit), truncated: ids.length > limit };
    }
    result.engine = { name: 'columnar', freshAsOf: new Date(store.lastSync()!).toISOString() };
    return result;
  }
  const result = await postgresFunnel(context, query);
  result.engine = { name: 'postgres', ...(declined ? { reason: declined } : {}) };
  return result;
}

async function postgresFunnel(context: ReportContext, query: FunnelQuery): Promise<FunnelResult> {
  const { q } = context;
  const { reachedCte, n } = await funnelSql(context, query);
  const counts = Array.from({ length: n }, (_, k) => `count(*) filter (where reached >= ${k + 1})::int as c${k + 1}`);
  const medians = Array.from({ length: n - 1 }, (_, k) => {
    const gap = `extract(epoch from t${k + 2} - t${k + 1})`;
    return `percentile_cont(0.5) within group (order by ${gap}) as m${k + 2}, avg(${gap})::float8 as a${k + 2}`;
  });
  const total = `extract(epoch from t${n} - t1)`;
  const histogram = TIME_TO_CONVERT_BUCKETS.map((upTo, index) => {
    const lower = index === 0 ? '' : ` and ${total} >= ${TIME_TO_CONVERT_BUCKETS[index - 1]!}`;
    const upper = upTo === null ? '' : ` and ${total} < ${upTo}`;
    return `count(*) filter (where reached = ${n}${lower}${upper})::int as h${index}`;
  });
  const trend = query.trendInterval
    ? periodSql(q, query.trendInterval, PERIOD_FORMAT[query.trendInterval], 't1')
    : 'null::text';
  const text = `with ${reachedCte}
    select grouping(bd, period) = 3 as overall, grouping(bd) = 0 as by_breakdown, bd, period,
           ${counts.join(', ')}${medians.length ? `, ${medians.join(', ')}` : ''},
           percentile_cont(0.5) within group (order by ${total}) filter (where reached = ${n}) as ttc_median,
           percentile_cont(0.9) within group (order by ${total}) filter (where reached = ${n}) as ttc_p90,
           ${histogram.join(', ')}
      from (select *, ${trend} as period from reached) as r
     group by grouping sets ((), (bd), (period))`;
  const rows = await runBudgeted<FunnelRow>(context, text);
  const result = shapeFunnel(context, query, rows);
  if (query.dropOff) result.dropOff = await dropOffProfiles(context, reachedCte, query);
  return result;
}

/** The answer from the per-group rows either engine returns. */
function shapeFunnel(context: ReportContext, query: FunnelQuery, rows: FunnelRow[]): FunnelResult {
  const n = query.steps.length;
  const overall = rows.find((row) => row.overall) ?? null;
  const labels = query.steps.map(selectorLabel);
  const stepsOf = (row: FunnelRow | null) => stepResults(row, n, labels);
  const result: FunnelResult = {
    steps: stepsOf(overall),
    timeToConvert: {
      converted: Number(overall?.[`c${n}`] ?? 0),
      medianSeconds: nullableNumber(overall?.ttc_median),
      p90Seconds: nullableNumber(overall?.ttc_p90),
      distribution: TIME_TO_CONVERT_BUCKETS.map((upToSeconds, index) => ({ upToSeconds, count: Number(overall?.[`h${index}`] ?? 0) })),
    },
    warnings: context.warnings,
    range: { from: new Date(context.range.fromMs).toISOString(), to: new Date(context.range.toMs).toISOString(), timeZone: context.timeZone },
  };
  if (query.breakdown) {
    const groups = rows.filter((row) => row.by_breakdown).sort((a, b) => Number(b.c1) - Number(a.c1) || String(a.bd).localeCompare(String(b.bd)));
    const limit = query.breakdownLimit ?? 25;
    result.breakdown = groups.slice(0, limit).map((row) => ({ value: row.bd, steps: stepsOf(row) }));
    result.breakdownTruncated = groups.length > limit;
  }
  if (query.trendInterval) {
    result.trend = rows
      .filter((row) => !row.overall && !row.by_breakdown)
      .map((row) => ({ period: row.period!, started: Number(row.c1), converted: Number(row[`c${n}`]), conversionRate: conversionRate(Number(row[`c${n}`]), Number(row.c1)) }))
      .sort((a, b) => a.period.localeCompare(b.period));
  }
  return result;
}

/** Profiles that reached step k and not k + 1 (optionally of one breakdown value). */
async function dropOffProfiles(context: ReportContext, reachedCte: string, query: FunnelQuery): Promise<NonNullable<FunnelResult['dropOff']>> {
  const dropOff = query.dropOff!;
  const limit = dropOff.limit ?? 1000;
  const values = [...context.q.values];
  const bind = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  // A group of a PII breakdown is named by its value; the profiles are grouped by the value's token.
  const sealed = query.breakdown?.kind === 'property' ? sealedFieldOf(query.breakdown.property) : null;
  const value = sealed && typeof dropOff.breakdownValue === 'string' ? piiTokenOf(context.q, sealed, dropOff.breakdownValue) : dropOff.breakdownValue;
  const byValue = value === undefined ? '' : value === null ? ' and bd is null' : ` and bd = ${bind(value, 'text')}`;
  const rows = await runBudgeted<{ profile_id: string }>(
    context,
    `with ${reachedCte} select profile_id from reached where reached = ${bind(dropOff.step, 'int')}${byValue} order by profile_id limit ${bind(limit + 1, 'int')}`,
    values,
  );
  return { step: dropOff.step, profileIds: rows.slice(0, limit).map((row) => row.profile_id), truncated: rows.length > limit };
}

function nullableNumber(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function stepResults(row: FunnelRow | null, n: number, labels: readonly string[]): FunnelResult['steps'] {
  const count = (k: number) => Number(row?.[`c${k}`] ?? 0);
  return Array.from({ length: n }, (_, index) => {
    const k = index + 1;
    return {
      step: k,
      label: labels[index]!,
      count: count(k),
      conversionFromFirst: conversionRate(count(k), count(1)),
      conversionFromPrevious: k === 1 ? 1 : conversionRate(count(k), count(k - 1)),
      droppedFromPrevious: k === 1 ? 0 : count(k - 1) - count(k),
      medianSecondsFromPrevious: k === 1 ? null : nullableNumber(row?.[`m${k}`]),
      averageSecondsFromPrevious: k === 1 ? null : nullableNumber(row?.[`a${k}`]),
    };
  });
}
