import path from 'node:path';

/** Runtime settings, read once from the environment so every module sees the same values. */
export interface Config {
  /** External PostgreSQL; when absent an embedded server is started in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  embeddedPgPort: number;
  host: string;
  port: number;
  adminToken: string | undefined;
  logLevel: string;
  /** Requests in flight on the collection endpoints before new ones get 429 (load shedding). */
  maxInflightIngest: number;
  runWorker: boolean;
  workerConcurrency: number;
  /** Real-time segments read per-profile event digests (segments/digests.ts); off unless TOUCHPOINT_SEGMENT_DIGESTS=on. */
  segmentDigests: boolean;
  /** Build the dashboard at start when its build is missing or stale (TOUCHPOINT_DASHBOARD_BUILD=off to skip). */
  buildDashboard: boolean;
  /** Requests per second per client IP (collection, API) and per API caller; 0 turns one off. */
  rateLimits: { collectionPerIp: number | null; apiPerIp: number | null; apiPerCaller: number | null };
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  }
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: path.resolve(env.TOUCHPOINT_DATA_DIR || '.touchpoint'),
    embeddedPgPort: intFromEnv(env, 'TOUCHPOINT_PG_PORT', 54329),
    host: env.TOUCHPOINT_HOST || '127.0.0.1',
    port: intFromEnv(env, 'TOUCHPOINT_PORT', 8080),
    adminToken: env.TOUCHPOINT_ADMIN_TOKEN || undefined,
    logLevel: env.TOUCHPOINT_LOG_LEVEL || 'info',
    maxInflightIngest: intFromEnv(env, 'TOUCHPOINT_MAX_INFLIGHT', 512),
    runWorker: env.TOUCHPOINT_WORKER !== 'off',
    workerConcurrency: intFromEnv(env, 'TOUCHPOINT_WORKER_CONCURRENCY', 4),
    segmentDigests: env.TOUCHPOINT_SEGMENT_DIGESTS === 'on',
    buildDashboard: env.TOUCHPOINT_DASHBOARD_BUILD !== 'off',
    rateLimits: {
      collectionPerIp: intFromEnv(env, 'TOUCHPOINT_RATE_LIMIT_COLLECTION_IP', 1000) || null,
      apiPerIp: intFromEnv(env, 'TOUCHPOINT_RATE_LIMIT_API_IP', 100) || null,
      apiPerCaller: intFromEnv(env, 'TOUCHPOINT_RATE_LIMIT_API_CALLER', 100) || null,
    },
  };
}
