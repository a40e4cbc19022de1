import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import type { Config } from '../config.ts';
import { closePool, createPool, type Db } from './database.ts';
import { startEmbeddedPostgres } from './embedded.ts';
import { migrate } from './migrate.ts';

export interface Storage {
  db: Db;
  url: string;
  /** True when this process runs (or attached to) the embedded PostgreSQL. */
  embedded: boolean;
  close(): Promise<void>;
}

/** Connects to DATABASE_URL, or starts the embedded PostgreSQL; then applies pending migrations. */
export async function openStorage(
  config: Config,
  options: { migrate?: boolean; poolSize?: number; onLog?: (line: string) => void } = {},
): Promise<Storage> {
  let url = config.databaseUrl;
  let stopEmbedded = async () => undefined as void;
  if (!url) {
    const embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.embeddedPgPort,
      onLog: options.onLog,
    });
    url = embedded.url;
    stopEmbedded = embedded.stop;
  }
  const db = createPool(url, options.poolSize);
  try {
    if (options.migrate !== false) {
      await migrate(db);
      // The ingest transaction enqueues jobs, so the job queue's schema is part of ours.
      await runWorkerMigrations({ pgPool: db });
    }
  } catch (error) {
    await db.end();
    await stopEmbedded();
    throw error;
  }
  return {
    db,
    url,
    embedded: !config.databaseUrl,
    close: async () => {
      await closePool(db);
      await stopEmbedded();
    },
  };
}
