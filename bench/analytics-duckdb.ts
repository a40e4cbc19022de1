/**
 * The reference engine of the analytics benchmark: the same events exported from PostgreSQL to
 * Parquet, and the same sequential funnel computed by DuckDB (@duckdb/node-api) in plain SQL.
 *
 * Funnel meaning (docs/analytics.md, sequential order): an attempt starts at a step-1 event in the
 * range; each next step is the earliest later event (in (timestamp, seq) order) matching it, within
 * start + window (inclusive); a profile counts with its best attempt (most steps, then the earliest
 * start), and a first-touch breakdown takes that attempt's step-1 value. Here each step is an
 * ASOF join ("the first event of step k after the previous hit"), a columnar engine's natural way.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export interface DuckFunnel {
  steps: string[];
  fromMs: number;
  toMs: number;
  windowMs: number;
  /** Column of the export to break down by (first touch), if any. */
  breakdown?: 'source_kind' | 'category';
}

export interface DuckFunnelResult {
  counts: number[];
  breakdown: Map<string | null, number[]>;
}

export async function openDuck(threads: number): Promise<{ connection: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const connection = await instance.connect();
  return {
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/** Converts the CSV that PostgreSQL wrote (COPY … TO) into a Parquet file with typed columns. */
export async function csvToParquet(connection: DuckDBConnection, csv: string, parquet: string): Promise<void> {
  await connection.run(`
    copy (
      select profile_id::uuid as profile_id, type, event, make_timestamp(ts_us) as ts, seq, source_kind, category
        from read_csv(${quote(csv)}, header = true, columns = {
          'profile_id': 'varchar', 'type': 'varchar', 'event': 'varchar', 'ts_us': 'bigint', 'seq': 'bigint', 'source_kind': 'varchar', 'category': 'varchar'
        })
    ) to ${quote(parquet)} (format parquet, compression zstd)`);
}

/**
 * "Step not reached": a k no event has, so the next step's ASOF condition (e.k > it) finds nothing.
 * (With a NULL there, the 3-step counts disagreed with PostgreSQL's — step 2 over by 1,626 of
 * 31,191 profiles at 2,000,000 events — a later step matched after an unreached one; with this
 * sentinel both engines agree.)
 */
const NONE = '9223372036854775807::bigint';

const quote = (text: string) => `'${text.replaceAll("'", "''")}'`;

export async function duckFunnel(connection: DuckDBConnection, parquet: string, funnel: DuckFunnel): Promise<DuckFunnelResult> {
  const n = funnel.steps.length;
  const us = (ms: number) => `make_timestamp(${Math.round(ms * 1000)}::bigint)`;
  const windowUs = Math.round(funnel.windowMs * 1000);
  const names = [...new Set(funnel.steps)].map(quote).join(', ');
  const bd = funnel.breakdown ?? 'null::varchar';
  const ctes = [
    `ev as (
       select profile_id, ts, event, ${bd} as bd, row_number() over (order by profile_id, ts, seq) as k
         from read_parquet(${quote(parquet)})
        where profile_id is not null and type = 'track' and event in (${names})
          and ts >= ${us(funnel.fromMs)} and ts < ${us(funnel.toMs + funnel.windowMs)}
     )`,
    `a1 as (select profile_id, k as k1, ts as t1, bd from ev where event = ${quote(funnel.steps[0]!)} and ts < ${us(funnel.toMs)})`,
  ];
  for (let step = 2; step <= n; step++) {
    ctes.push(`a${step} as (
      select a.*, case when e.ts <= a.t1 + to_microseconds(${windowUs}) then e.k else ${NONE} end as k${step}
        from a${step - 1} a asof left join (select profile_id, k, ts from ev where event = ${quote(funnel.steps[step - 1]!)}) e
          on a.profile_id = e.profile_id and e.k > a.k${step - 1}
    )`);
  }
  const reached = Array.from({ length: n - 1 }, (_, i) => `(k${i + 2} < ${NONE})::int`).join(' + ');
  const counts = Array.from({ length: n }, (_, i) => `count(*) filter (where reached >= ${i + 1})::int as c${i + 1}`).join(', ');
  const sql = `
    with ${ctes.join(',\n')},
    attempts as (select profile_id, k1, bd, 1 + ${reached} as reached from a${n}),
    best as (
      select profile_id, max(reached) as reached, first(bd order by reached desc, k1) as bd
        from attempts group by profile_id
    )
    select bd, grouping(bd) = 0 as by_bd, ${counts} from best group by grouping sets ((), (bd))`;
  const reader = await connection.runAndReadAll(sql);
  const rows = reader.getRowObjects();
  const countsOf = (row: Record<string, unknown>) => Array.from({ length: n }, (_, i) => Number(row[`c${i + 1}`]));
  const total = rows.find((row) => row.by_bd === false);
  const breakdown = new Map<string | null, number[]>();
  if (funnel.breakdown) for (const row of rows.filter((r) => r.by_bd === true)) breakdown.set((row.bd as string | null) ?? null, countsOf(row));
  return { counts: total ? countsOf(total) : Array<number>(n).fill(0), breakdown };
}
