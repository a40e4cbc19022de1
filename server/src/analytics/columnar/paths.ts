import { eventMatchOf, windowMs, type EventSelector } from '../definition.ts';
import type { ReportContext } from '../run.ts';
import { uuidText, type ColumnarStore } from './store.ts';

/*
 * Paths on the columnar copy (store.ts): one DuckDB scan of the actions (track, page, screen) in
 * the range of the profiles that have the anchor there, sorted by (profile, time, seq) like the
 * PostgreSQL windows, streamed here and walked per profile by `walkProfile` — the same steps as
 * paths.ts's query (sessions split by inactivity, repeats collapsed inside a session, the first
 * anchor, N steps after or before it in its session, cut at the `until` event) — and counted into
 * the rows the PostgreSQL query returns, so paths.ts shapes both alike.
 *
 * Declined (`columnarPathsSupport` says why; PostgreSQL answers): property filters on the anchor
 * or `until`, and a segment filter.
 */

/** The query shape both engines share (paths.ts's PathsQuery, restated to avoid an import cycle). */
export interface ColumnarPathsQuery {
  anchor: EventSelector;
  direction?: 'after' | 'before';
  until?: EventSelector;
  steps?: number;
  sessionGap?: { amount: number; unit: 'minutes' | 'hours' | 'days' | 'weeks' };
  collapseRepeats?: boolean;
  exclude?: string[];
  topPaths?: number;
  segment?: unknown;
  sourceKinds?: string[];
}

export interface PathNodeRow {
  k: number;
  label: string;
  previous: string | null;
  count: number;
  ended: number;
}

export interface ColumnarPathsAnswer {
  nodeRows: PathNodeRow[];
  pathRows: Array<{ path: string[]; count: number }>;
}

/** Null when the columnar engine can answer the query, else the reason it declines. */
export function columnarPathsSupport(query: ColumnarPathsQuery): string | null {
  if ((query.anchor.filters ?? []).length > 0) return 'property filters on the anchor';
  if (query.until && (query.until.filters ?? []).length > 0) return 'property filters on the until event';
  if (query.segment !== undefined) return 'a segment filter';
  return null;
}

const sqlText = (text: string) => `'${text.replaceAll("'", "''")}'`;

function selectorDuck(selector: EventSelector): string {
  const match = eventMatchOf(selector);
  const tests = [`type = ${sqlText(match.type)}`];
  if (match.name !== undefined) tests.push(`${match.type === 'track' ? 'event' : 'name'} = ${sqlText(match.name)}`);
  return `(${tests.join(' and ')})`;
}

const IS_ANCHOR = 1;
const IS_END = 2;

export interface WalkSpec {
  /** Session gap in the unit of `ts`: a longer pause starts a new session. */
  gap: number;
  collapse: boolean;
  before: boolean;
  steps: number;
}

/**
 * One profile's path: its actions in (time, seq) order as parallel arrays (`flags` bit 1 anchor,
 * bit 2 `until`). Returns the labels from the anchor (index 0) over the kept steps, or null when
 * the profile has no anchor. The restatement of paths.ts's ev → sessions → cleaned → anchors →
 * numbered → kept CTEs.
 */
export function walkProfile(ts: readonly number[], labels: ReadonlyArray<string | null>, flags: readonly number[], spec: WalkSpec): Array<string | null> | null {
  const n = ts.length;
  const session = new Int32Array(n);
  const cleaned: number[] = [];
  let current = 0;
  for (let i = 0; i < n; i++) {
    if (i === 0 || ts[i]! - ts[i - 1]! > spec.gap) current++;
    session[i] = current;
    // The lag is over the session's events before cleaning: the first of a session is always kept.
    const repeat = spec.collapse && i > 0 && session[i - 1] === current && labels[i - 1] === labels[i];
    if (!repeat) cleaned.push(i);
  }
  const at = cleaned.findIndex((i) => (flags[i]! & IS_ANCHOR) !== 0);
  if (at < 0) return null;
  const anchor = cleaned[at]!;
  const path: Array<string | null> = [labels[anchor]!];
  const direction = spec.before ? -1 : 1;
  for (let c = at + direction; c >= 0 && c < cleaned.length; c += direction) {
    const i = cleaned[c]!;
    if (session[i] !== session[anchor] || path.length > spec.steps) break;
    path.push(labels[i]!);
    if ((flags[i]! & IS_END) !== 0) break;
  }
  return path;
}

/** PostgreSQL's order of text under the C collation (the database's): by UTF-8 bytes, i.e. by code point. */
function compareText(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** PostgreSQL's order of text[]: element by element, then the shorter first. */
export function comparePaths(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const order = compareText(a[i]!, b[i]!);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

export async function columnarPaths(store: ColumnarStore, context: ReportContext, query: ColumnarPathsQuery): Promise<ColumnarPathsAnswer> {
  const spec: WalkSpec = {
    gap: windowMs(query.sessionGap ?? { amount: 30, unit: 'minutes' }) * 1000,
    collapse: query.collapseRepeats ?? true,
    before: query.direction === 'before',
    steps: query.steps ?? 5,
  };
  const label = `case type when 'track' then event else type || ':' || coalesce(name, '') end`;
  const fromUs = Math.round(context.range.fromMs * 1000);
  const toUs = Math.round(context.range.toMs * 1000);
  let sourceFilter = 'true';
  if (query.sourceKinds) {
    const ids = (context.q.sources?.ids ?? []).filter((_, index) => query.sourceKinds!.includes(context.q.sources!.kinds[index]!));
    sourceFilter = ids.length ? `source_id in (${ids.map((id) => `${sqlText(uuidText(id))}::uuid`).join(', ')})` : 'false';
  }
  const excluded = query.exclude?.length ? `and (${label}) not in (${query.exclude.map(sqlText).join(', ')})` : '';
  const actions = `workspace_id = ${sqlText(uuidText(context.workspaceId))}::uuid and ts_us >= ${fromUs} and ts_us < ${toUs}
       and type in ('track', 'page', 'screen') and ${sourceFilter} ${excluded}`;
  const anchorTest = selectorDuck(query.anchor);
  const endTest = query.until ? selectorDuck(query.until) : 'false';
  // Only profiles with an anchor among their actions can have a path, and only from (or up to) the
  // time of their first anchor: the first anchor is never a collapsed repeat (an equal label before
  // it would be an earlier anchor), and a session after it is split by gaps after it alone.
  const sql = `
    select (hash(e.profile_id) >> 11)::double as p, e.ts_us::double as t, ${label} as label,
           (case when ${anchorTest} then ${IS_ANCHOR} else 0 end) | (case when ${endTest} then ${IS_END} else 0 end) as f
      from events e
      join (select profile_id, min(ts_us) as anchor_us from events where ${actions} and ${anchorTest} group by profile_id) a on a.profile_id = e.profile_id
     where ${actions} and e.ts_us ${spec.before ? '<=' : '>='} a.anchor_us
     order by e.profile_id, e.ts_us, e.seq`;

  const nodes = new Map<string, PathNodeRow>();
  const paths = new Map<string, { path: string[]; count: number }>();
  let ts: number[] = [];
  let labels: Array<string | null> = [];
  let flags: number[] = [];
  let currentKey = NaN;
  const flush = () => {
    if (ts.length === 0) return;
    const walked = walkProfile(ts, labels, flags, spec);
    ts = [];
    labels = [];
    flags = [];
    if (!walked) return;
    const last = walked.length - 1;
    walked.forEach((step, k) => {
      const previous = k === 0 ? null : walked[k - 1]!;
      const key = JSON.stringify([k, step, previous]);
      const node = nodes.get(key) ?? { k, label: step as string, previous, count: 0, ended: 0 };
      node.count += 1;
      if (k === last) node.ended += 1;
      nodes.set(key, node);
    });
    const path = walked.slice(1) as string[];
    const key = JSON.stringify(path);
    const entry = paths.get(key) ?? { path, count: 0 };
    entry.count += 1;
    paths.set(key, entry);
  };

  await store.streamChunks(sql, (chunk, rowCount) => {
    const keys = chunk.getColumnVector(0);
    const tv = chunk.getColumnVector(1);
    const lv = chunk.getColumnVector(2);
    const fv = chunk.getColumnVector(3);
    for (let row = 0; row < rowCount; row++) {
      const key = keys.getItem(row) as number;
      if (key !== currentKey) {
        flush();
        currentKey = key;
      }
      ts.push(tv.getItem(row) as number);
      labels.push(lv.getItem(row) as string | null);
      flags.push(fv.getItem(row) as number);
    }
  });
  flush();

  const pathRows = [...paths.values()].sort((a, b) => b.count - a.count || comparePaths(a.path, b.path)).slice(0, Math.trunc(query.topPaths ?? 20));
  return { nodeRows: [...nodes.values()], pathRows };
}
