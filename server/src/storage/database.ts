import pg from 'pg';

export type Db = pg.Pool;
export type DbClient = pg.PoolClient;
/** Anything that can run a query: the pool or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'>;

// timestamptz and bigint come back as strings by default; events need exact instants
// and our counters fit comfortably in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

const openConnections = new WeakMap<pg.Pool, Set<Promise<void>>>();

export function createPool(connectionString: string, max = 20): Db {
  const pool = new pg.Pool({ connectionString, max, application_name: 'touchpoint' });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const open = new Set<Promise<void>>();
  openConnections.set(pool, open);
  pool.on('connect', (client) => {
    const closed = new Promise<void>((resolve) => client.once('end', () => resolve()));
    open.add(closed);
    void closed.then(() => open.delete(closed));
  });
  return pool;
}

/**
 * Ends the pool and waits until PostgreSQL has closed every one of its connections. `pool.end()`
 * resolves once it has asked idle clients to end, before their sockets close; stopping the server
 * right after it made PostgreSQL terminate those backends mid-goodbye, and every client logged
 * "terminating connection due to administrator command" at each shutdown.
 */
export async function closePool(pool: Db, waitMs = 5000): Promise<void> {
  await pool.end();
  const open = openConnections.get(pool);
  if (!open || open.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(open), new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
}

export interface TransactionOptions {
  /**
   * 'local': the commit returns once PostgreSQL has it, before its WAL is flushed to disk. Only
   * for work derived from data already durable that takes its own input off a queue in the same
   * transaction (the worker's identity and segment batches): a crash of PostgreSQL can lose the
   * last such commits (~0.6 s at most), whole, and their queue rows with them, so the work is
   * done again. Never for anything acknowledged to a client: collection answers 200 only after a
   * flushed commit. Any later flushed commit flushes these too (the WAL is one sequence).
   */
  durability?: 'flushed' | 'local';
}

export async function withTransaction<T>(db: Db, work: (client: DbClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  const client = await db.connect();
  try {
    await client.query(options.durability === 'local' ? 'begin; set local synchronous_commit = off' : 'begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** The same server's connection string for another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Gives the open transaction its id now. Readers that follow a sequence (journeys' intake over
 * `events_seq`) wait for every transaction that had an id when they looked; `nextval` alone
 * does not assign one, so a writer that draws a number first could commit it behind a reader's
 * back. Call this before drawing numbers that such a reader follows.
 */
export async function assignTransactionId(client: Queryable): Promise<void> {
  await client.query('select pg_current_xact_id()');
}

let cursorCount = 0;

/**
 * Runs `sql` through a server-side cursor on `client` (which must be in a transaction) and hands
 * each row to `handle`, `fetchSize` rows at a time: a whole-table read in bounded memory. The
 * cursor is planned for all its rows (a sequential scan where that is cheaper), not the first few.
 */
export async function forEachRow<Row extends Record<string, unknown>>(
  client: DbClient,
  sql: string,
  params: unknown[],
  handle: (row: Row) => void,
  fetchSize = 10_000,
): Promise<number> {
  const cursor = `each_row_${++cursorCount}`;
  await client.query('set local cursor_tuple_fraction = 1.0');
  await client.query(`declare ${cursor} no scroll cursor for ${sql}`, params);
  let count = 0;
  for (;;) {
    const { rows } = await client.query<Row>(`fetch ${fetchSize} from ${cursor}`);
    for (const row of rows) handle(row);
    count += rows.length;
    if (rows.length < fetchSize) break;
  }
  await client.query(`close ${cursor}`);
  return count;
}

