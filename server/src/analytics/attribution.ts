import { Type, type Static } from '@sinclair/typebox';
import { numberOf } from '../segments/sql/values.ts';
import type { Db } from '../storage/database.ts';
import { markovCredits, ruleCredits, RULE_MODELS, type ChannelJourney, type ConversionPath, type Model } from './attribution-models.ts';
import { BreakdownSchema, EventSelectorSchema, QueryBaseProperties, WindowSchema, windowInterval, windowMs } from './definition.ts';
import { flagUnknownEvents, reportContext, runBudgeted, type ReportContext } from './run.ts';
import { columnarAttributionJourneys, columnarAttributionSupport, type AttributionJourneys } from './columnar/attribution.ts';
import { activeColumnarStore, type ColumnarStore } from './columnar/store.ts';
import { breakdownSql, eventPathSql, rangeSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';

export const AttributionQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    conversion: EventSelectorSchema,
    valueProperty: Type.Optional(Type.String({ minLength: 1, maxLength: 300, description: 'Numeric property of the conversion credited as value (e.g. revenue)' })),
    touchpoints: Type.Array(EventSelectorSchema, { minItems: 1, maxItems: 20, description: 'The events that are touches (e.g. Message Clicked, campaign page views)' }),
    channel: BreakdownSchema,
    direct: Type.Optional(Type.String({ minLength: 1, maxLength: 100, default: 'direct', description: 'The channel value of direct touches (and of touches without one), skipped by last_non_direct' })),
    lookback: Type.Optional(WindowSchema),
    halfLife: Type.Optional(WindowSchema),
    models: Type.Optional(
      Type.Array(Type.Union([...RULE_MODELS, 'markov'].map((m) => Type.Literal(m))), { minItems: 1, maxItems: 7, uniqueItems: true }),
    ),
  },
  { additionalProperties: false },
);
export type AttributionQuery = Static<typeof AttributionQuerySchema>;

const CreditSchema = Type.Object({ channel: Type.String(), conversions: Type.Number(), value: Type.Number(), removalEffect: Type.Optional(Type.Number()) });
export const AttributionResultSchema = Type.Object({
  conversions: Type.Integer(),
  value: Type.Number(),
  unattributed: Type.Object({ conversions: Type.Integer(), value: Type.Number() }, { description: 'Conversions with no touch in the lookback window' }),
  models: Type.Record(Type.String(), Type.Array(CreditSchema)),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
  engine: Type.Optional(
    Type.Object({
      name: Type.Union([Type.Literal('postgres'), Type.Literal('columnar')]),
      reason: Type.Optional(Type.String({ description: 'postgres: why the columnar engine did not answer' })),
      freshAsOf: Type.Optional(Type.String({ format: 'date-time', description: 'columnar: the copy holds every event settled by then' })),
    }),
  ),
});
export type AttributionResult = Static<typeof AttributionResultSchema>;

export interface AttributionEngineOptions {
  /** The columnar copy to answer from (default: the process's active one, if any); null: PostgreSQL only. */
  columnar?: ColumnarStore | null;
}

/**
 * Conversions in the range with their touches in the lookback window before them, credited by
 * every model asked for (attribution-models.ts). The Markov chain also reads the journeys of
 * profiles that were touched in the range and did not convert. The journeys come from the columnar
 * copy when it is fresh and can answer the query, else from PostgreSQL; the models are the same.
 */
export async function runAttribution(db: Db, workspaceId: string, query: AttributionQuery, now: Date, options: AttributionEngineOptions = {}): Promise<AttributionResult> {
  const context = await reportContext(db, workspaceId, query, now);
  await flagUnknownEvents(context, [{ field: 'conversion', selector: query.conversion }, ...query.touchpoints.map((selector, index) => ({ field: `touchpoints.${index}`, selector }))]);
  const direct = query.direct ?? 'direct';
  const models = (query.models ?? [...RULE_MODELS, 'markov']) as Model[];
  const store = options.columnar === undefined ? activeColumnarStore() : options.columnar;
  if (store?.syncBeforeRead) await store.catchUp(db);
  const declined = store ? (columnarAttributionSupport(query) ?? store.staleness()) : 'no columnar copy';
  let journeys: AttributionJourneys;
  let engine: NonNullable<AttributionResult['engine']>;
  if (store && declined === null) {
    journeys = await columnarAttributionJourneys(store, context, query, models.includes('markov'));
    engine = { name: 'columnar', freshAsOf: new Date(store.lastSync()!).toISOString() };
  } else {
    journeys = await postgresJourneys(db, context, query, models.includes('markov'));
    engine = { name: 'postgres', ...(declined ? { reason: declined } : {}) };
  }
  const { paths, lost } = journeys;
  const attributed = paths.filter((path) => path.touches.length > 0);
  const unattributed = paths.filter((path) => path.touches.length === 0);
  const sum = (list: ConversionPath[]) => list.reduce((total, path) => total + path.value, 0);
  const modelOptions = { direct, halfLifeSeconds: windowMs(query.halfLife ?? { amount: 7, unit: 'days' }) / 1000 };
  const result: AttributionResult = {
    conversions: paths.length,
    value: sum(paths),
    unattributed: { conversions: unattributed.length, value: sum(unattributed) },
    models: {},
    warnings: context.warnings,
  };
  for (const model of models) if (model !== 'markov') result.models[model] = ruleCredits(model, attributed, modelOptions);
  if (models.includes('markov')) {
    const chain: ChannelJourney[] = [...attributed.map((path) => ({ channels: path.touches.map((touch) => touch.channel), converted: true, count: 1 })), ...lost];
    result.models.markov = markovCredits(chain, attributed.length, sum(attributed));
  }
  result.engine = engine;
  return result;
}

/** The conversions with their touches, and (for the Markov chain) the journeys that did not convert, by SQL. */
async function postgresJourneys(db: Db, context: ReportContext, query: AttributionQuery, withLost: boolean): Promise<AttributionJourneys> {
  const { q } = context;
  const lookback = query.lookback ?? { amount: 30, unit: 'days' as const };
  const direct = query.direct ?? 'direct';
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', context.now);
  const filters = `e.workspace_id = ${q.workspace} and e.profile_id is not null and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}`;
  const value = query.valueProperty ? `coalesce(${numberOf(eventPathSql(q, query.valueProperty))}, 0)` : '0::float8';
  const touchRange = { fromMs: context.range.fromMs - windowMs(lookback), toMs: context.range.toMs };
  const cte = `
    conversions as (
      select e.profile_id, e.timestamp, e.seq, ${value} as value from events e
       where ${filters} and ${selectorSql(q, query.conversion)} and ${rangeSql(q, context.range)}
    ),
    touches as (
      select e.profile_id, e.timestamp, e.seq, coalesce(${breakdownSql(q, query.channel)}, ${q.bind(direct, 'text')}) as channel from events e
       where ${filters} and (${query.touchpoints.map((selector) => selectorSql(q, selector)).join(' or ')}) and ${rangeSql(q, touchRange)}
    )`;
  const pathsText = `with ${cte}
    select c.value, array_agg(t.channel order by t.timestamp, t.seq) filter (where t.profile_id is not null) as channels,
           array_agg(extract(epoch from c.timestamp - t.timestamp)::float8 order by t.timestamp, t.seq) filter (where t.profile_id is not null) as ages
      from conversions c
      left join touches t on t.profile_id = c.profile_id and t.timestamp > c.timestamp - ${q.bind(windowInterval(lookback), 'interval')}
                         and (t.timestamp, t.seq) < (c.timestamp, c.seq)
     group by c.profile_id, c.timestamp, c.seq, c.value`;
  const rows = await runBudgeted<{ value: number; channels: string[] | null; ages: number[] | null }>(context, pathsText, [...q.values]);
  const paths: ConversionPath[] = rows.map((row) => ({
    value: Number(row.value),
    touches: (row.channels ?? []).map((channel, index) => ({ channel, ageSeconds: row.ages![index]! })),
  }));
  if (!withLost) return { paths, lost: [] };
  // Journeys that did not convert: each touched profile without a conversion in the range, its touches in the range.
  const lostText = `with ${cte}
    select channels, count(*)::int as count from (
      select t.profile_id, array_agg(t.channel order by t.timestamp, t.seq) as channels from touches t
       where t.timestamp >= ${q.bind(new Date(context.range.fromMs).toISOString(), 'timestamptz')}
         and not exists (select 1 from conversions c where c.profile_id = t.profile_id)
       group by t.profile_id
    ) as lost group by channels`;
  const lost = await runBudgeted<{ channels: string[]; count: number }>(context, lostText, [...q.values]);
  return { paths, lost: lost.map((row) => ({ channels: row.channels, converted: false, count: row.count })) };
}
