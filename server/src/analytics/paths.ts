import { Type, type Static } from '@sinclair/typebox';
import type { Db } from '../storage/database.ts';
import { EventSelectorSchema, QueryBaseProperties, WindowSchema, selectorLabel, windowInterval } from './definition.ts';
import { flagUnknownEvents, reportContext, runBudgeted, type ReportContext } from './run.ts';
import { rangeSql, segmentFilterSql, selectorSql, sourceKindsSql } from './sql.ts';
import { columnarPaths, columnarPathsSupport } from './columnar/paths.ts';
import { activeColumnarStore, type ColumnarStore } from './columnar/store.ts';

export const MAX_PATH_STEPS = 10;

export const PathsQuerySchema = Type.Object(
  {
    ...QueryBaseProperties,
    anchor: EventSelectorSchema,
    direction: Type.Optional(Type.Union([Type.Literal('after'), Type.Literal('before')], { default: 'after' })),
    until: Type.Optional(EventSelectorSchema),
    steps: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PATH_STEPS, default: 5 })),
    sessionGap: Type.Optional(WindowSchema),
    collapseRepeats: Type.Optional(Type.Boolean({ default: true, description: 'Count the same event repeated in a row once (path cleaning)' })),
    exclude: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50, description: 'Node labels to leave out of paths (e.g. "page:Home")' })),
    topPaths: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 20 })),
  },
  { additionalProperties: false },
);
export type PathsQuery = Static<typeof PathsQuerySchema>;

export const PathsResultSchema = Type.Object({
  anchor: Type.String(),
  profiles: Type.Integer({ description: 'Profiles with the anchor event in the range' }),
  nodes: Type.Array(Type.Object({ id: Type.String(), step: Type.Integer({ description: '0 is the anchor; 1… after it (or before it, going back)' }), label: Type.String(), count: Type.Integer(), ended: Type.Integer({ description: 'Paths that end at this node' }) })),
  edges: Type.Array(Type.Object({ source: Type.String(), target: Type.String(), count: Type.Integer() })),
  topPaths: Type.Array(Type.Object({ path: Type.Array(Type.String()), count: Type.Integer() })),
  warnings: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })),
  engine: Type.Optional(
    Type.Object({
      name: Type.Union([Type.Literal('postgres'), Type.Literal('columnar')]),
      freshAsOf: Type.Optional(Type.String({ description: 'columnar: when the copy last caught up with PostgreSQL' })),
      reason: Type.Optional(Type.String({ description: 'postgres: why the columnar engine did not answer' })),
    }),
  ),
});
export type PathsResult = Static<typeof PathsResultSchema>;

/** The node label of event `e`: track events by name, views as `page:Name` / `screen:Name`. */
const LABEL = `case e.type when 'track' then e.event else e.type || ':' || coalesce(e.name, '') end`;
export const nodeId = (step: number, label: string) => `${step}:${label}`;

/**
 * Paths after (or before) each profile's first anchor event in the range, inside the anchor's
 * session (split by inactivity), cleaned (repeats collapsed, excluded events dropped), as
 * Sankey nodes and edges per step and the most common whole paths.
 */
export interface PathsEngineOptions {
  /** The columnar copy to answer from (default: the process's active one, if any); null: PostgreSQL only. */
  columnar?: ColumnarStore | null;
}

export async function runPaths(db: Db, workspaceId: string, query: PathsQuery, now: Date, options: PathsEngineOptions = {}): Promise<PathsResult> {
  const context = await reportContext(db, workspaceId, query, now);
  await flagUnknownEvents(context, [{ field: 'anchor', selector: query.anchor }, ...(query.until ? [{ field: 'until', selector: query.until }] : [])]);
  const store = options.columnar === undefined ? activeColumnarStore() : options.columnar;
  if (store?.syncBeforeRead) await store.catchUp(db);
  const declined = store ? (columnarPathsSupport(query) ?? store.staleness()) : 'no columnar copy';
  if (store && declined === null) {
    const answer = await columnarPaths(store, context, query);
    return {
      ...sankeyOf(answer.nodeRows),
      anchor: selectorLabel(query.anchor),
      topPaths: answer.pathRows,
      warnings: context.warnings,
      engine: { name: 'columnar', freshAsOf: new Date(store.lastSync()!).toISOString() },
    };
  }
  const result = await postgresPaths(context, query);
  result.engine = { name: 'postgres', ...(declined ? { reason: declined } : {}) };
  return result;
}

async function postgresPaths(context: ReportContext, query: PathsQuery): Promise<PathsResult> {
  const { q, db, now } = context;
  const steps = query.steps ?? 5;
  const before = query.direction === 'before';
  const gap = q.bind(windowInterval(query.sessionGap ?? { amount: 30, unit: 'minutes' }), 'interval');
  const segment = await segmentFilterSql(db, q, query.segment, 'e.profile_id', now);
  const excluded = query.exclude?.length ? `and (${LABEL}) <> all(${q.bind(query.exclude, 'text[]')})` : '';
  const collapse = query.collapseRepeats ?? true;
  const order = before ? 'c.timestamp desc, c.seq desc' : 'c.timestamp, c.seq';
  const cte = `
    ev as (
      select e.profile_id, e.timestamp, e.seq, ${LABEL} as label, ${selectorSql(q, query.anchor)} as is_anchor,
             ${query.until ? selectorSql(q, query.until) : 'false'} as is_end
        from events e
       where e.workspace_id = ${q.workspace} and ${rangeSql(q, context.range)} and e.profile_id is not null
         and e.type in ('track', 'page', 'screen') and ${sourceKindsSql(q, query.sourceKinds)} and ${segment} ${excluded}
    ),
    sessions as (
      select *, sum(case when previous is null or timestamp - previous > ${gap} then 1 else 0 end)
                  over (partition by profile_id order by timestamp, seq) as session
        from (select *, lag(timestamp) over (partition by profile_id order by timestamp, seq) as previous from ev) as x
    ),
    cleaned as (
      select * from (select *, lag(label) over (partition by profile_id, session order by timestamp, seq) as previous_label from sessions) as y
       where ${collapse ? 'previous_label is distinct from label' : 'true'}
    ),
    anchors as (
      select distinct on (profile_id) profile_id, session, timestamp, seq, label from cleaned where is_anchor order by profile_id, timestamp, seq
    ),
    numbered as (
      select c.profile_id, c.label, c.is_end, row_number() over (partition by c.profile_id order by ${order}) as k
        from cleaned c join anchors a on a.profile_id = c.profile_id
       where c.session = a.session and (c.timestamp, c.seq) ${before ? '<' : '>'} (a.timestamp, a.seq)
    ),
    kept as (
      select profile_id, label, k from (
        select *, min(case when is_end then k end) over (partition by profile_id) as end_k from numbered
      ) as z where k <= ${steps} and (end_k is null or k <= end_k)
    ),
    walked as (
      select a.profile_id, 0 as k, a.label, null::text as previous from anchors a
      union all
      select kept.profile_id, kept.k, kept.label, coalesce(lag(kept.label) over (partition by kept.profile_id order by kept.k), a.label)
        from kept join anchors a on a.profile_id = kept.profile_id
    )`;
  const nodesText = `with ${cte},
    lasts as (select profile_id, max(k) as last_k from walked group by profile_id)
    select w.k::int as k, w.label, w.previous, count(*)::int as count, count(*) filter (where w.k = l.last_k)::int as ended
      from walked w join lasts l on l.profile_id = w.profile_id group by 1, 2, 3`;
  const pathsText = `with ${cte}
    select path, count(*)::int as count from (
      select profile_id, coalesce(array_agg(label order by k) filter (where k > 0), '{}') as path from walked group by profile_id
    ) as p group by path order by count desc, path limit ${Math.trunc(query.topPaths ?? 20)}`;
  const values = [...q.values];
  const [nodeRows, pathRows] = await Promise.all([
    runBudgeted<{ k: number; label: string; previous: string | null; count: number; ended: number }>(context, nodesText, values),
    runBudgeted<{ path: string[]; count: number }>(context, pathsText, values),
  ]);
  return { ...sankeyOf(nodeRows), anchor: selectorLabel(query.anchor), topPaths: pathRows, warnings: context.warnings };
}

/** Nodes (per step and label) and edges (from the previous step's label) from counts per (step, label, previous label). */
export function sankeyOf(rows: ReadonlyArray<{ k: number; label: string; previous: string | null; count: number; ended: number }>): Pick<PathsResult, 'nodes' | 'edges' | 'profiles'> {
  const nodes = new Map<string, PathsResult['nodes'][number]>();
  const edges: PathsResult['edges'] = [];
  for (const row of rows) {
    const id = nodeId(row.k, row.label);
    const node = nodes.get(id) ?? { id, step: row.k, label: row.label, count: 0, ended: 0 };
    node.count += row.count;
    node.ended += row.ended;
    nodes.set(id, node);
    if (row.k > 0 && row.previous !== null) edges.push({ source: nodeId(row.k - 1, row.previous), target: id, count: row.count });
  }
  const sorted = [...nodes.values()].sort((a, b) => a.step - b.step || b.count - a.count || a.label.localeCompare(b.label));
  return {
    nodes: sorted,
    edges: edges.sort((a, b) => b.count - a.count || a.source.localeCompare(b.source) || a.target.localeCompare(b.target)),
    profiles: sorted.filter((node) => node.step === 0).reduce((sum, node) => sum + node.count, 0),
  };
}
