import { Type, type Static } from '@sinclair/typebox';
import { ApiError } from '../api/errors.ts';
import type { Db } from '../storage/database.ts';
import { EventSelectorSchema, QueryBaseProperties, WindowSchema, windowInterval, windowMs } from './definition.ts';
import { chiSquareTest, compareProportions, conversionRate, sequentialDecision, type Group } from './stats.ts';
import { flagUnknownEvents, reportContext, runBudgeted } from './run.ts';
import { eventPathSql, rangeSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';

const TestOptions = {
  confidence: Type.Optional(Type.Number({ minimum: 0.5, maximum: 0.999, default: 0.95 })),
  plannedSampleSize: Type.Optional(
    Type.Integer({ minimum: 1, description: 'Planned profiles (instances) per group; enables the sequential boundary that makes looking early safe' }),
  ),
};

export const ExperimentQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    assignment: EventSelectorSchema,
    variantProperty: Type.String({ minLength: 1, maxLength: 300, description: 'Property of the assignment event naming the variant (e.g. variant)' }),
    conversion: EventSelectorSchema,
    window: Type.Optional(WindowSchema),
    control: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "The control variant (default 'holdout' or 'control' when present, else the first by name)" })),
    ...TestOptions,
  },
  { additionalProperties: false },
);
export type ExperimentQuery = Static<typeof ExperimentQuerySchema>;

export const JourneyResultsQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    journeyId: Type.String({ minLength: 1, maxLength: 200 }),
    goal: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Only this goal counts as converted (Journey Converted.goal)' })),
    ...TestOptions,
  },
  { additionalProperties: false },
);
export type JourneyResultsQuery = Static<typeof JourneyResultsQuerySchema>;

const Comparison = Type.Object({
  variant: Type.String(),
  absoluteUplift: Type.Number(),
  relativeUplift: Type.Union([Type.Number(), Type.Null()]),
  confidenceInterval: Type.Tuple([Type.Number(), Type.Number()]),
  z: Type.Number(),
  pValue: Type.Number(),
  chanceToBeat: Type.Number(),
  decision: Type.String({ description: 'significant | keep_running | not_significant (planned size reached) | no_plan (p-value valid only at a fixed horizon)' }),
  boundary: Type.Union([Type.Number(), Type.Null()]),
  informationFraction: Type.Union([Type.Number(), Type.Null()]),
});
const Variant = Type.Object({ variant: Type.String(), total: Type.Integer(), converted: Type.Integer(), conversionRate: Type.Number() });
export const ExperimentResultSchema = Type.Object({
  control: Type.Union([Type.String(), Type.Null()]),
  variants: Type.Array(Variant),
  comparisons: Type.Array(Comparison),
  chiSquare: Type.Union([Type.Object({ statistic: Type.Number(), degreesOfFreedom: Type.Integer(), pValue: Type.Number() }), Type.Null()]),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
});
export type ExperimentResult = Static<typeof ExperimentResultSchema>;

export const JourneyResultsSchema = Type.Object({
  journeyId: Type.String(),
  entered: Type.Integer(),
  groups: ExperimentResultSchema,
  splits: Type.Array(Type.Object({ nodeId: Type.String(), result: ExperimentResultSchema })),
  nodes: Type.Array(
    Type.Object({
      nodeId: Type.String(),
      counts: Type.Record(Type.String(), Type.Integer(), { description: 'Events at the node: Journey Exited:<reason>, Journey Converted, Journey Split Assigned:<variant>, Message Sent …' }),
    }),
  ),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
});
export type JourneyResults = Static<typeof JourneyResultsSchema>;

/** Variants with their counts → rates, the comparisons of each with the control, and a chi-square over all. */
export function experimentResult(
  groups: ReadonlyArray<{ variant: string } & Group>,
  options: { control?: string; confidence?: number; plannedSampleSize?: number },
  warnings: ExperimentResult['warnings'],
): ExperimentResult {
  const variants = [...groups].sort((a, b) => a.variant.localeCompare(b.variant));
  const names = variants.map((v) => v.variant);
  const control = options.control ?? names.find((name) => name === 'holdout' || name === 'control') ?? names[0] ?? null;
  if (options.control !== undefined && variants.length > 0 && !names.includes(options.control)) {
    throw new ApiError(400, 'unknown_variant', `No variant "${options.control}" was assigned; variants: ${names.join(', ')}`, 'control');
  }
  const controlGroup = variants.find((v) => v.variant === control);
  const comparisons = controlGroup
    ? variants
        .filter((v) => v.variant !== control)
        .map((v) => {
          const comparison = compareProportions(v, controlGroup, options.confidence ?? 0.95);
          const sequential = sequentialDecision(comparison.z, Math.min(v.total, controlGroup.total), options.plannedSampleSize, 1 - (options.confidence ?? 0.95));
          return { variant: v.variant, ...comparison, ...sequential };
        })
    : [];
  if (options.plannedSampleSize === undefined && comparisons.length > 0 && !warnings.some((w) => w.field === 'plannedSampleSize')) {
    warnings.push({
      field: 'plannedSampleSize',
      message: 'No planned sample size: p-values and intervals are valid only if this is the one look at a horizon fixed in advance; give plannedSampleSize to judge early looks against a sequential boundary',
    });
  }
  return {
    control,
    variants: variants.map((v) => ({ variant: v.variant, total: v.total, converted: v.converted, conversionRate: conversionRate(v.converted, v.total) })),
    comparisons,
    chiSquare: variants.length >= 2 ? chiSquareTest(variants) : null,
    warnings,
  };
}

/**
 * A/B results from events: each profile's first assignment in the range puts it in a variant; it
 * converted if a conversion event follows within the window.
 */
export async function runExperiment(db: Db, workspaceId: string, query: ExperimentQuery, now: Date): Promise<ExperimentResult> {
  const context = await reportContext(db, workspaceId, query, now);
  const { q } = context;
  await flagUnknownEvents(context, [{ field: 'assignment', selector: query.assignment }, { field: 'conversion', selector: query.conversion }]);
  const window = query.window ?? { amount: 14, unit: 'days' as const };
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', now);
  const filters = `e.workspace_id = ${q.workspace} and e.profile_id is not null and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}`;
  const rows = await runBudgeted<{ variant: string; total: number; converted: number }>(
    context,
    `with assigned as (
       select distinct on (e.profile_id) e.profile_id, e.timestamp, (${eventPathSql(q, query.variantProperty)} #>> '{}') as variant
         from events e where ${filters} and ${selectorSql(q, query.assignment)} and ${rangeSql(q, context.range)}
        order by e.profile_id, e.timestamp, e.seq
     ),
     conversions as (
       select e.profile_id, e.timestamp from events e where ${filters} and ${selectorSql(q, query.conversion)} and ${rangeSql(q, context.range, 'e', windowMs(window))}
     )
     select coalesce(a.variant, '(none)') as variant, count(*)::int as total,
            count(*) filter (where exists (select 1 from conversions c where c.profile_id = a.profile_id and c.timestamp >= a.timestamp
                                            and c.timestamp <= a.timestamp + ${q.bind(windowInterval(window), 'interval')}))::int as converted
       from assigned a group by 1`,
  );
  return experimentResult(rows, query, context.warnings);
}

/**
 * A journey's results from the events the journey engine writes (docs/events.md): instances
 * entered per group (treatment / holdout) and converted, the uplift of treatment over holdout,
 * each random split's variants, and the events recorded at each node.
 */
export async function runJourneyResults(db: Db, workspaceId: string, query: JourneyResultsQuery, now: Date): Promise<JourneyResults> {
  const context = await reportContext(db, workspaceId, query, now);
  const { q } = context;
  const journey = q.bind(query.journeyId, 'text');
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', now);
  const base = `e.workspace_id = ${q.workspace} and e.type = 'track' and e.properties ->> 'journey_id' = ${journey} and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}`;
  const goal = query.goal ? ` and e.properties ->> 'goal' = ${q.bind(query.goal, 'text')}` : '';
  // Conversions may come after the range closes for instances that entered inside it.
  const converted = `select distinct e.properties ->> 'instance_id' as instance from events e
                      where ${base} and e.event = 'Journey Converted'${goal} and e.timestamp >= ${q.bind(new Date(context.range.fromMs).toISOString(), 'timestamptz')}`;
  const entered = `select distinct on (e.properties ->> 'instance_id') e.properties ->> 'instance_id' as instance, coalesce(e.properties ->> 'group', 'treatment') as grp
                     from events e where ${base} and e.event = 'Journey Entered' and ${rangeSql(q, context.range)}
                    order by e.properties ->> 'instance_id', e.timestamp`;
  const groupsText = `with entered as (${entered}), converted as (${converted})
    select grp as variant, count(*)::int as total, count(*) filter (where instance in (select instance from converted))::int as converted
      from entered group by 1`;
  const splitsText = `with entered as (${entered}), converted as (${converted})
    select node_id, variant, count(*)::int as total, count(*) filter (where instance in (select instance from converted))::int as converted
      from (select distinct on (e.properties ->> 'instance_id', e.properties ->> 'node_id') e.properties ->> 'instance_id' as instance,
                   e.properties ->> 'node_id' as node_id, e.properties ->> 'variant' as variant
              from events e where ${base} and e.event = 'Journey Split Assigned' and e.properties ->> 'instance_id' in (select instance from entered)
             order by e.properties ->> 'instance_id', e.properties ->> 'node_id', e.timestamp) as s
     group by 1, 2`;
  const nodesText = `with entered as (${entered})
    select e.properties ->> 'node_id' as node_id,
           e.event || coalesce(':' || case e.event when 'Journey Exited' then e.properties ->> 'reason' when 'Journey Split Assigned' then e.properties ->> 'variant' end, '') as label,
           count(*)::int as count
      from events e
     where ${base} and e.properties ? 'node_id' and e.properties ->> 'instance_id' in (select instance from entered)
       and (e.event like 'Journey %' or e.event like 'Message %')
     group by 1, 2`;
  const [groupRows, splitRows, nodeRows] = await Promise.all([
    runBudgeted<{ variant: string } & Group>(context, groupsText),
    runBudgeted<{ node_id: string; variant: string } & Group>(context, splitsText),
    runBudgeted<{ node_id: string; label: string; count: number }>(context, nodesText),
  ]);
  if (groupRows.length === 0) context.warnings.push({ field: 'journeyId', message: `No instance of journey "${query.journeyId}" entered in the range` });
  const options = { control: groupRows.some((row) => row.variant === 'holdout') ? 'holdout' : undefined, confidence: query.confidence, plannedSampleSize: query.plannedSampleSize };
  const splitNodes = [...new Set(splitRows.map((row) => row.node_id))].sort();
  const nodes = new Map<string, Record<string, number>>();
  for (const row of nodeRows) nodes.set(row.node_id, { ...(nodes.get(row.node_id) ?? {}), [row.label]: row.count });
  return {
    journeyId: query.journeyId,
    entered: groupRows.reduce((sum, row) => sum + row.total, 0),
    groups: experimentResult(groupRows, options, context.warnings),
    splits: splitNodes.map((nodeId) => ({
      nodeId,
      result: experimentResult(
        splitRows.filter((row) => row.node_id === nodeId),
        { confidence: query.confidence, plannedSampleSize: query.plannedSampleSize },
        context.warnings,
      ),
    })),
    nodes: [...nodes.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([nodeId, counts]) => ({ nodeId, counts })),
    warnings: context.warnings,
  };
}

