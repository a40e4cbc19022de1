import { ApiError } from '../api/errors.ts';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { InvalidTimeZoneError, resolveRange, type EventSelector, type ResolvedRange, type TimeRange } from './definition.ts';
import { querySql, type QuerySql } from './sql.ts';
import { piiCodec } from '../privacy/pii-codec.ts';

/** Every report query is cut off after this long unless the request asks for less (or more, up to 60 s). */
export const DEFAULT_BUDGET_MS = 20_000;
const QUERY_CANCELED = '57014';
/** Memory one sort or hash of a report query may use before spilling (per worker). */
const REPORT_WORK_MEM = '128MB';

export interface Warning {
  field: string;
  message: string;
}

/** What one analysis request runs against: the workspace, its time zone, the resolved range and the SQL builder. */
export interface ReportContext {
  db: Db;
  workspaceId: string;
  timeZone: string;
  now: Date;
  range: ResolvedRange;
  q: QuerySql;
  budgetMs: number;
  warnings: Warning[];
}

export async function workspaceTimeZone(db: Queryable, workspaceId: string): Promise<string> {
  const { rows } = await db.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
  if (!rows[0]) throw new ApiError(404, 'not_found', 'Workspace not found');
  return rows[0].time_zone;
}

export async function reportContext(
  db: Db,
  workspaceId: string,
  request: { range: TimeRange; timeBudgetMs?: number },
  now: Date,
): Promise<ReportContext> {
  const timeZone = await workspaceTimeZone(db, workspaceId);
  let range: ResolvedRange;
  try {
    range = resolveRange(request.range, timeZone, now);
  } catch (error) {
    if (error instanceof InvalidTimeZoneError) throw new ApiError(409, 'invalid_time_zone', `${error.message}; fix the workspace's time zone`);
    if (error instanceof RangeError) throw new ApiError(400, 'invalid_range', error.message, error.message.startsWith('range.') ? error.message.split(':')[0] : 'range');
    throw error;
  }
  const q = querySql(workspaceId, timeZone, now);
  // A workspace has a handful of sources: a source breakdown reads their kinds from two bound arrays.
  const { rows: sources } = await db.query<{ id: string; kind: string }>('select id, kind from sources where workspace_id = $1 order by id', [workspaceId]);
  if (sources.length <= 1000) q.sources = { ids: sources.map((source) => source.id), kinds: sources.map((source) => source.kind) };
  const codec = await piiCodec(db, workspaceId);
  q.piiHash = (value) => codec.hash(value);
  return { db, workspaceId, timeZone, now, range, q, budgetMs: request.timeBudgetMs ?? DEFAULT_BUDGET_MS, warnings: [] };
}

/**
 * Runs one report query inside the time budget: a query still running when it ends is cancelled
 * and answered 503 `query_timeout` (narrow the range, the steps or the breakdown, or raise the budget).
 */
export async function runBudgeted<R extends object>(context: ReportContext, sql: string, allValues: unknown[] = context.q.values): Promise<R[]> {
  const { text, values } = withoutUnusedParameters(sql, allValues);
  try {
    return await withTransaction(context.db, async (client) => {
      await client.query(`set local statement_timeout = ${Math.max(1, Math.round(context.budgetMs))}`);
      // Reports only read; the planner may use every core it is allowed for the big scans.
      await client.query('set local transaction read only');
      // Per-profile sorts of a funnel's or path's events spill to disk at the default 4 MB.
      await client.query(`set local work_mem = '${REPORT_WORK_MEM}'`);
      const { rows } = await client.query<R>(text, values);
      return rows;
    });
  } catch (error) {
    if ((error as { code?: string }).code === QUERY_CANCELED) {
      throw new ApiError(503, 'query_timeout', `The report did not finish within its time budget of ${context.budgetMs} ms; narrow the range, steps or breakdown, or raise timeBudgetMs`, undefined, {}, {
        budgetMs: context.budgetMs,
      });
    }
    throw error;
  }
}

/**
 * Queries of one report share a parameter list; PostgreSQL refuses a parameter a query does not
 * mention (it cannot type it), so those are dropped and the rest renumbered.
 */
export function withoutUnusedParameters(text: string, values: readonly unknown[]): { text: string; values: unknown[] } {
  const used = new Set([...text.matchAll(/\$(\d+)/g)].map((match) => Number(match[1])));
  const renumbered = new Map<number, number>();
  const kept: unknown[] = [];
  values.forEach((value, index) => {
    if (!used.has(index + 1)) return;
    kept.push(value);
    renumbered.set(index + 1, kept.length);
  });
  return { text: text.replace(/\$(\d+)/g, (placeholder, number: string) => `$${renumbered.get(Number(number)) ?? number}`), values: kept };
}

/**
 * Flags event names the workspace's catalogue has never seen: a typo is the usual cause, but
 * events other stages write (Journey …, Message …) may simply not have happened yet, so it is a
 * warning with the closest known names, not an error.
 */
export async function flagUnknownEvents(context: ReportContext, selectors: ReadonlyArray<{ field: string; selector: EventSelector }>): Promise<void> {
  const named = selectors.filter(({ selector }) => selector.event !== undefined);
  if (named.length === 0) return;
  const { rows } = await context.db.query<{ event_type: string; event_name: string }>(
    'select event_type, event_name from event_catalogue where workspace_id = $1',
    [context.workspaceId],
  );
  const known = new Set(rows.map((row) => `${row.event_type}\u0000${row.event_name}`));
  for (const { field, selector } of named) {
    const type = selector.type ?? 'track';
    if (known.has(`${type}\u0000${selector.event}`)) continue;
    const close = rows
      .filter((row) => row.event_type === type)
      .map((row) => ({ name: row.event_name, distance: editDistance(row.event_name.toLowerCase(), selector.event!.toLowerCase()) }))
      .filter((candidate) => candidate.distance <= Math.max(2, Math.floor(selector.event!.length / 4)))
      .sort((a, b) => a.distance - b.distance)
      .slice(0, 3)
      .map((candidate) => `"${candidate.name}"`);
    context.warnings.push({
      field,
      message: `No ${type} event "${selector.event}" has been seen in this workspace${close.length ? `; did you mean ${close.join(', ')}?` : ''}`,
    });
  }
}

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
