import type { EventSelector } from '../definition.ts';
import type { ReportContext } from '../run.ts';
import { selectorDuck, sqlText } from './funnel.ts';
import { uuidText, type ColumnarStore } from './store.ts';

/*
 * Lifecycle on the columnar copy (store.ts): the same definition as lifecycle.ts's PostgreSQL
 * query, computed by DuckDB over the copy, returning the same (period, status, profiles) rows.
 * Periods are local (workspace time zone): the caller gives each period's bounds as instants, so
 * DuckDB needs no time-zone rules and both engines cut periods at the same instants.
 *
 * What it cannot answer it declines (`columnarLifecycleSupport` says why) and PostgreSQL answers:
 * property filters on an activity event, a segment filter, a breakdown (by a profile trait, which
 * the copy does not hold).
 */

/** The query shape both engines share (lifecycle.ts's LifecycleQuery, restated to avoid an import cycle). */
export interface ColumnarLifecycleQuery {
  events?: EventSelector[];
  segment?: unknown;
  sourceKinds?: string[];
  breakdown?: unknown;
}

export type LifecycleStatus = 'new' | 'returning' | 'resurrecting' | 'dormant';

export interface LifecycleRow {
  period: string;
  bd: string | null;
  status: LifecycleStatus;
  profiles: number;
}

/** One local period read: its label and its bounds as instants (ms, end exclusive). */
export interface PeriodBounds {
  label: string;
  fromMs: number;
  toMs: number;
}

/** Null when the columnar engine can answer the query, else the reason it declines. */
export function columnarLifecycleSupport(query: ColumnarLifecycleQuery): string | null {
  if ((query.events ?? []).some((selector) => (selector.filters ?? []).length > 0)) return 'property filters on an activity event';
  if (query.segment !== undefined) return 'a segment filter';
  if (query.breakdown !== undefined) return 'a trait breakdown';
  return null;
}

/**
 * `periods` are consecutive: the period before the range first (read only for its
 * returning/dormant split), then the range's periods. Rows come for the range's periods only.
 */
export async function columnarLifecycle(store: ColumnarStore, context: ReportContext, query: ColumnarLifecycleQuery, periods: readonly PeriodBounds[]): Promise<LifecycleRow[]> {
  const selectors = query.events ?? [];
  const activity = selectors.length > 0 ? `(${selectors.map(selectorDuck).join(' or ')})` : `type in ('track', 'page', 'screen')`;
  let sourceFilter = 'true';
  if (query.sourceKinds) {
    const ids = (context.q.sources?.ids ?? []).filter((_, index) => query.sourceKinds!.includes(context.q.sources!.kinds[index]!));
    sourceFilter = ids.length ? `source_id in (${ids.map((id) => `${sqlText(uuidText(id))}::uuid`).join(', ')})` : 'false';
  }
  const us = (ms: number) => String(Math.round(ms * 1000));
  const readFrom = us(periods[0]!.fromMs);
  const readTo = us(periods.at(-1)!.toMs);
  const bounds = periods.map((period, index) => `(${index}, ${us(period.fromMs)}::bigint, ${us(period.toMs)}::bigint)`).join(', ');
  const filters = `workspace_id = ${sqlText(uuidText(context.workspaceId))}::uuid and ${activity} and ${sourceFilter}`;
  // Period index 0 is the period before the range; statuses for 1…n, dormant for the period after the last active one.
  const sql = `
    with bounds(idx, lo, hi) as (values ${bounds}),
    active as (
      select distinct e.profile_id, b.idx
        from events e join bounds b on e.ts_us >= b.lo and e.ts_us < b.hi
       where ${filters} and e.ts_us >= ${readFrom} and e.ts_us < ${readTo}
    ),
    earlier as (select distinct profile_id from events where ${filters} and ts_us < ${readFrom}),
    marked as (
      select profile_id, idx, lag(idx) over w as prev, lead(idx) over w as next
        from active window w as (partition by profile_id order by idx)
    ),
    statuses as (
      select m.idx,
             case when m.prev = m.idx - 1 then 'returning'
                  when m.prev is not null then 'resurrecting'
                  when m.profile_id in (select profile_id from earlier) then 'resurrecting'
                  else 'new' end as status
        from marked m where m.idx >= 1
      union all
      select idx + 1, 'dormant' from marked where (next is null or next > idx + 1) and idx + 1 < ${periods.length}
    )
    select idx::integer as idx, status, count(*)::integer as profiles from statuses group by all`;
  const connection = await store.reader();
  try {
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjects().map((row) => ({
      period: periods[row.idx as number]!.label,
      bd: null,
      status: row.status as LifecycleStatus,
      profiles: row.profiles as number,
    }));
  } finally {
    connection.closeSync();
  }
}
