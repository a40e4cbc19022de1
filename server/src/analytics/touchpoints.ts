import { Type, type Static } from '@sinclair/typebox';
import { numberOf } from '../segments/sql/values.ts';
import type { Db } from '../storage/database.ts';
import { BreakdownSchema, EventSelectorSchema, QueryBaseProperties, WindowSchema, windowInterval, windowMs } from './definition.ts';
import { conversionRate } from './stats.ts';
import { flagUnknownEvents, reportContext, runBudgeted } from './run.ts';
import { breakdownSql, eventPathSql, rangeSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';

export const TouchpointQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    by: Type.Optional(BreakdownSchema),
    exposure: Type.Optional(EventSelectorSchema),
    click: Type.Optional(EventSelectorSchema),
    conversion: Type.Optional(EventSelectorSchema),
    valueProperty: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })),
    window: Type.Optional(WindowSchema),
    sort: Type.Optional(
      Type.Union(['exposures', 'reach', 'clicks', 'ctr', 'conversions', 'conversionRate', 'value'].map((m) => Type.Literal(m)), { default: 'conversions' }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  {
    additionalProperties: false,
    description:
      'Defaults read the channel events (docs/events.md): exposures are Message Sent, clicks Message Clicked, per template_key; for placements use Decision Impression / Decision Clicked by placement or content_id',
  },
);
export type TouchpointQuery = Static<typeof TouchpointQuerySchema>;

const Row = Type.Object({
  touchpoint: Type.Union([Type.String(), Type.Null()]),
  exposures: Type.Integer(),
  reach: Type.Integer({ description: 'Distinct profiles exposed' }),
  clicks: Type.Integer(),
  clickers: Type.Integer(),
  ctr: Type.Number({ description: 'clicks / exposures' }),
  conversions: Type.Integer({ description: 'Exposed profiles that converted within the window after their first exposure' }),
  conversionRate: Type.Number({ description: 'conversions / reach' }),
  value: Type.Number(),
});
export const TouchpointResultSchema = Type.Object({
  touchpoints: Type.Array(Row),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
});
export type TouchpointResult = Static<typeof TouchpointResultSchema>;

/**
 * Per touchpoint (a message template, a channel, a journey node, a placement …): exposures, unique
 * reach, clicks, CTR, and profiles converting within the window after their first exposure, with
 * the value of those conversions; ranked so the best and worst stand out.
 */
export async function runTouchpoints(db: Db, workspaceId: string, query: TouchpointQuery, now: Date): Promise<TouchpointResult> {
  const context = await reportContext(db, workspaceId, query, now);
  const { q } = context;
  const exposure = query.exposure ?? { event: 'Message Sent' };
  const click = query.click ?? { event: 'Message Clicked' };
  await flagUnknownEvents(context, [
    { field: 'exposure', selector: exposure },
    { field: 'click', selector: click },
    ...(query.conversion ? [{ field: 'conversion', selector: query.conversion }] : []),
  ]);
  const by = query.by ?? { kind: 'property', property: 'template_key' };
  const window = query.window ?? { amount: 7, unit: 'days' as const };
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', now);
  const filters = `e.workspace_id = ${q.workspace} and e.profile_id is not null and ${sourceKindsSql(q, query.sourceKinds)} and ${segment}`;
  const key = breakdownSql(q, by);
  const value = query.valueProperty ? `coalesce(${numberOf(eventPathSql(q, query.valueProperty))}, 0)` : '0::float8';
  const conversion = query.conversion
    ? `firsts as (select key, profile_id, min(timestamp) as first_at from exposures group by 1, 2),
       conversions as (
         select e.profile_id, e.timestamp, ${value} as value from events e
          where ${filters} and ${selectorSql(q, query.conversion)} and ${rangeSql(q, context.range, 'e', windowMs(window))}
       ),
       converted as (
         select f.key, count(distinct f.profile_id)::int as conversions, coalesce(sum(c.value), 0)::float8 as value
           from firsts f join conversions c on c.profile_id = f.profile_id and c.timestamp > f.first_at
                                         and c.timestamp <= f.first_at + ${q.bind(windowInterval(window), 'interval')}
          group by 1
       )`
    : `converted as (select null::text as key, 0 as conversions, 0::float8 as value where false)`;
  const text = `
    with exposures as (
      select ${key} as key, e.profile_id, e.timestamp from events e where ${filters} and ${selectorSql(q, exposure)} and ${rangeSql(q, context.range)}
    ),
    clicks as (
      select ${key} as key, count(*)::int as clicks, count(distinct e.profile_id)::int as clickers from events e
       where ${filters} and ${selectorSql(q, click)} and ${rangeSql(q, context.range)} group by 1
    ),
    ${conversion},
    exposed as (select key, count(*)::int as exposures, count(distinct profile_id)::int as reach from exposures group by 1)
    select x.key, x.exposures, x.reach, coalesce(k.clicks, 0) as clicks, coalesce(k.clickers, 0) as clickers,
           coalesce(c.conversions, 0) as conversions, coalesce(c.value, 0) as value
      from exposed x left join clicks k on k.key is not distinct from x.key left join converted c on c.key is not distinct from x.key`;
  const rows = await runBudgeted<{ key: string | null; exposures: number; reach: number; clicks: number; clickers: number; conversions: number; value: number }>(context, text);
  const touchpoints = rows.map((row) => ({
    touchpoint: row.key,
    exposures: row.exposures,
    reach: row.reach,
    clicks: row.clicks,
    clickers: row.clickers,
    ctr: conversionRate(row.clicks, row.exposures),
    conversions: row.conversions,
    conversionRate: conversionRate(row.conversions, row.reach),
    value: Number(row.value),
  }));
  const sort = (query.sort ?? 'conversions') as keyof (typeof touchpoints)[number];
  touchpoints.sort((a, b) => Number(b[sort]) - Number(a[sort]) || String(a.touchpoint).localeCompare(String(b.touchpoint)));
  return { touchpoints: touchpoints.slice(0, query.limit ?? 50), warnings: context.warnings };
}
