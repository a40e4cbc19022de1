import type { Queryable } from './database.ts';

/*
 * Following a table by its id (or seq) sequence: ids are drawn at insert but become visible at
 * commit, so a reader that moved past a visible id could skip a smaller one committed a moment
 * later. A reader reads the sequence, then takes a transaction id of its own (autocommit: it ends
 * at once) — the horizon. Writers take their id before drawing numbers (assignTransactionId in
 * database.ts, or an earlier write in the same transaction), so every number read belongs to a
 * transaction whose id is below the horizon's; once the oldest running transaction is above the
 * horizon, all of those have ended and no number up to `last` can still appear.
 *
 * A snapshot's xmax would not do: since PostgreSQL 14 it is the latest *completed* id + 1, so a
 * running writer whose id is above every completed one is neither listed in the snapshot nor
 * counted in its xmin (server/test/journeys-settle.test.ts shows it).
 */

export interface SequenceHorizon {
  /** The sequence's last value when read. */
  last: number;
  /** A transaction id taken after reading it. */
  xid: string;
}

export async function readSequenceHorizon(db: Queryable, sequenceSql: string): Promise<SequenceHorizon> {
  const { rows } = await db.query<{ last: string }>(`select coalesce(pg_sequence_last_value(${sequenceSql}), 0)::bigint::text as last`);
  const { rows: own } = await db.query<{ xid: string }>('select pg_current_xact_id()::text as xid');
  return { last: Number(rows[0]!.last), xid: own[0]!.xid };
}

/** True once every transaction that could hold a number up to the horizon's `last` has ended. */
export async function horizonPassed(db: Queryable, horizon: SequenceHorizon): Promise<boolean> {
  const { rows } = await db.query<{ passed: boolean }>('select pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8 as passed', [horizon.xid]);
  return rows[0]!.passed;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The sequence's last value once no transaction that could still commit a smaller one is running; null if that takes longer than `timeoutMs`. */
export async function settledSequence(db: Queryable, sequenceSql: string, timeoutMs: number): Promise<number | null> {
  const horizon = await readSequenceHorizon(db, sequenceSql);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await horizonPassed(db, horizon)) return horizon.last;
    if (Date.now() >= deadline) return null;
    await sleep(5);
  }
}
