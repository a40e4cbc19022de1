import type { Queryable } from './database.ts';

/** First instant of the UTC month containing `time`. */
export function monthStart(time: Date): Date {
  return new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), 1));
}

export function partitionName(table: string, month: Date): string {
  const mm = String(month.getUTCMonth() + 1).padStart(2, '0');
  return `${table}_y${month.getUTCFullYear()}m${mm}`;
}

// Partitions known to exist, per database, so the hot path skips the catalog query.
const known = new WeakMap<object, Set<string>>();

/** Forgets a partition dropped by retention (privacy/retention.ts), so a later write re-creates it. */
export function forgetPartition(db: object, name: string): void {
  known.get(db)?.delete(name);
}

/**
 * Storage parameters of new partitions, per table (a partitioned parent takes none). Events leave
 * a fifth of each page free: identity resolution writes every event's profile_id after ingest
 * stored it, and a row whose new version fits on its page is not moved to a freshly extended one.
 * Behind a backlog (every event updated) PostgreSQL's CPU per resolved event was 8–14 % lower at
 * fillfactor 80 in 4 of 4 pairs, with no cost visible on ingest's stored phase (docs/benchmarks.md,
 * id-cut). Partitions made before keep theirs.
 */
const PARTITION_OPTIONS: Readonly<Record<string, string>> = { events: ' with (fillfactor = 80)' };

/**
 * Ensures a monthly partition of `table` exists for every timestamp. Creation happens in its own
 * short statements (not the caller's transaction) so a rolled-back batch never undoes it, and
 * concurrent writers creating the same month are serialised by an advisory lock.
 */
export async function ensureMonthlyPartitions(db: Queryable & object, table: string, times: Iterable<Date>): Promise<void> {
  let created = known.get(db);
  if (!created) {
    created = new Set();
    known.set(db, created);
  }
  const months = new Map<string, Date>();
  for (const time of times) {
    const month = monthStart(time);
    const name = partitionName(table, month);
    if (!created.has(name)) months.set(name, month);
  }
  for (const [name, month] of months) {
    const next = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1));
    // A DO block runs as one statement: lock, check, create. The lock is released at the
    // end of the implicit transaction.
    await db.query(`do $$
      begin
        perform pg_advisory_xact_lock(hashtext('partition:${name}'));
        if to_regclass('${name}') is null then
          execute format('create table %I partition of ${table} for values from (%L) to (%L)${PARTITION_OPTIONS[table] ?? ''}',
            '${name}', '${month.toISOString()}', '${next.toISOString()}');
        end if;
      end $$`);
    created.add(name);
  }
}
