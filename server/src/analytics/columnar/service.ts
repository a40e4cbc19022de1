import path from 'node:path';
import type { Db } from '../../storage/database.ts';
import { startPollingLoop } from '../../worker/polling-loop.ts';
import { ColumnarStore, setActiveColumnarStore } from './store.ts';

/** Idle wait between sync rounds: the copy is at most about this far behind PostgreSQL, plus a round. */
const SYNC_POLL_MS = 1000;

/**
 * Opens the columnar copy in `<dataDir>/analytics/events.duckdb`, makes it the one funnels answer
 * from, and keeps it caught up with PostgreSQL. `TOUCHPOINT_ANALYTICS_ENGINE=postgres` turns it off
 * (every analysis then reads PostgreSQL only). The process serving the API owns the file (DuckDB
 * allows one writing process); deleting the file while stopped rebuilds it on the next start.
 */
export async function startColumnarAnalytics(options: { db: Db; dataDir: string; log: (message: string) => void; onError: (error: unknown) => void }) {
  if ((process.env.TOUCHPOINT_ANALYTICS_ENGINE ?? 'columnar') === 'postgres') return { stop: async () => undefined };
  const file = path.join(options.dataDir, 'analytics', 'events.duckdb');
  const store = await ColumnarStore.open(file);
  setActiveColumnarStore(store);
  options.log(`Analytics columnar copy in ${file} (catching up with PostgreSQL in the background)`);
  const loop = startPollingLoop({
    name: 'analytics columnar copy',
    drainOnce: async () => {
      const outcome = await store.sync(options.db);
      // Always wait a poll between rounds: a round already drains everything settled.
      void outcome;
      return 0;
    },
    pollMs: SYNC_POLL_MS,
    onError: (error) => options.onError(error),
  });
  return {
    async stop() {
      await loop.stop();
      setActiveColumnarStore(null);
      store.close();
    },
  };
}
