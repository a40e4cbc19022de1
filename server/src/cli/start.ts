import type { Config } from '../config.ts';
import { startColumnarAnalytics } from '../analytics/columnar/service.ts';
import { buildServer } from '../api/server.ts';
import { createIngestLoad } from '../ingest/load.ts';
import { ensureDashboardBuilt } from '../dashboard/build.ts';
import { openStorage } from '../storage/connect.ts';
import { portIsFree, StartupError, takeOverShutdownSignals } from '../storage/embedded.ts';
import { startWorker } from '../worker/runner.ts';
import { ensureAdminToken } from '../workspaces/admin-token.ts';

/**
 * `touchpoint start`: storage (embedded PostgreSQL unless DATABASE_URL), migrations, the HTTP API
 * and the background worker in one process. SIGINT/SIGTERM stop them in reverse order, so
 * in-flight requests finish and the embedded PostgreSQL shuts down cleanly.
 */
export async function startTouchpoint(config: Config): Promise<void> {
  const log = (message: string) => console.error(JSON.stringify({ level: 'info', time: Date.now(), msg: message }));
  // Checked before PostgreSQL starts (a first start runs initdb and every migration: up to a
  // minute on a loaded machine) so a taken port is reported at once; listen() below still
  // reports a port taken in between.
  if (!(await portIsFree(config.port, config.host))) throw portInUse(config.port);
  log(config.databaseUrl ? 'Using DATABASE_URL' : `Starting embedded PostgreSQL in ${config.dataDir}`);
  const storage = await openStorage(config);
  const admin = await ensureAdminToken(storage.db, config.adminToken);
  if (admin.generated) {
    console.log(
      `\nAdmin token (shown once; keep it, or set TOUCHPOINT_ADMIN_TOKEN to choose your own):\n\n  ${admin.generated}\n`,
    );
  }

  // Shared by the API and the worker: the worker's drains step back while ingestion is saturated.
  const ingestLoad = createIngestLoad();
  const app = await buildServer({
    db: storage.db,
    verifyAdmin: admin.verify,
    logLevel: config.logLevel,
    maxInflightIngest: config.maxInflightIngest,
    ingestLoad,
    rateLimits: config.rateLimits,
  });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await storage.close();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw portInUse(config.port);
    throw error;
  }

  // The analytics columnar copy (analytics/columnar): owned by the process serving the API.
  const columnar = await startColumnarAnalytics({
    db: storage.db,
    dataDir: config.dataDir,
    log,
    onError: (error) => console.error(JSON.stringify({ level: 'error', time: Date.now(), msg: `analytics columnar copy: ${error instanceof Error ? error.message : String(error)}` })),
  });
  let worker: { stop(): Promise<void> } | undefined;
  if (config.runWorker) {
    worker = await startWorker({ db: storage.db, concurrency: config.workerConcurrency, segmentDigests: config.segmentDigests, ingestLoad });
  }
  log(`Touchpoint is running at http://${config.host}:${config.port} (dashboard: /, API docs: /openapi.json)`);
  // Built after the API listens so health checks and ingestion never wait for Vite; the dashboard
  // routes read dist/ per request and serve it as soon as the build is swapped in.
  const dashboardBuild = new AbortController();
  const dashboardBuilt = config.buildDashboard ? ensureDashboardBuilt(log, undefined, dashboardBuild.signal) : Promise.resolve();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal} received: shutting down`);
    const timer = setTimeout(() => {
      console.error('Shutdown took longer than 20 s; exiting');
      process.exit(1);
    }, 20_000);
    try {
      dashboardBuild.abort();
      await dashboardBuilt;
      await app.close();
      await worker?.stop();
      await columnar.stop();
      await storage.close();
      log('Stopped cleanly');
      clearTimeout(timer);
      process.exit(0);
    } catch (error) {
      console.error(error);
      process.exit(1);
    }
  };
  takeOverShutdownSignals();
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGHUP', () => void shutdown('SIGHUP'));
}

function portInUse(port: number): StartupError {
  return new StartupError(`Port ${port} is already in use: stop the program using it or set TOUCHPOINT_PORT to a free port.`);
}
