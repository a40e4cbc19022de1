/**
 * Ingest benchmark: events/s through `POST /v1/batch` of the real server, compared in the same run
 * with (a) the same server answering without storing and (b) a bare multi-row INSERT through the
 * driver. Everything runs on one embedded PostgreSQL started in a temporary folder.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyInstance } from 'fastify';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import { presentedWriteKey, createKeyResolver } from '../server/src/api/auth.ts';
import { ApiError } from '../server/src/api/errors.ts';
import { buildServer } from '../server/src/api/server.ts';
import { loadConfig } from '../server/src/config.ts';
import { readJsonBody } from '../server/src/ingest/body.ts';
import { normalizeEvent } from '../server/src/ingest/normalize.ts';
import { BatchSchema, IngestResponseSchema, LIMITS } from '../server/src/ingest/schemas.ts';
import { createPool, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { ensureMonthlyPartitions } from '../server/src/storage/partitions.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';
import { createIngestLoad, type IngestLoad } from '../server/src/ingest/load.ts';
import type { ClientConfig, ClientReport } from './client.ts';
import { createBatchSource, type BenchEvent } from './events.ts';
import {
  clusterCpuSeconds,
  forkTs,
  freePort,
  machine,
  machineBusySeconds,
  median,
  percentile,
  postmasterPid,
  processCpuSeconds,
  sampleRss,
} from './system.ts';

export interface IngestOptions {
  events?: number;
  batchSize?: number;
  connections?: number;
  log?: (line: string) => void;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT = path.join(HERE, 'client.ts');
const WORKER_RUNNER = path.join(HERE, '../server/src/worker/runner.ts');
const NO_STORE_PATH = '/bench/batch-without-storing';
// How long the worker may take to catch up after the load (it steps back while the API is saturated,
// so at 1M most of the work comes after the load); keeps a full run within ~12 minutes.
const DRAIN_TIMEOUT_MS = 300_000;

const TARGETS = {
  storedEventsPerSecond: 25_000,
  ratioToBareInsert: 0.5,
  p99Ms: 250,
  peakRssMb: 600,
};

interface CpuSplit {
  /** The server's process (Fastify + driver; also the bench harness, which idles meanwhile). */
  serverSeconds: number;
  clientSeconds: number;
  postgresSeconds: number;
  /** Every process on the machine, including other users' work; 2 cores give 2 s per second. */
  machineBusySeconds: number;
  /** Busy CPU that was none of the above: other work on the machine competing with the run. */
  otherSeconds: number;
  /** (server + client + postgres) CPU per event: robust to other load, unlike events/s. */
  microsPerEvent: number;
}

export interface PhaseResult {
  events: number;
  requests: number;
  seconds: number;
  eventsPerSecond: number;
  /** Median over the run's whole seconds of events acknowledged in that second. */
  medianEventsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** p99 of the requests of each third of the phase (by send order; absent in phases not run by the load client). */
  p99ByThirdMs?: number[];
  peakRssMb: number;
  cpu: CpuSplit;
  accepted: number;
  duplicates: number;
  rejected: number;
  failures: Record<string, number>;
  firstFailure: string | null;
}

interface Meter {
  finish(clientSeconds: number, events: number): { peakRssMb: number; cpu: CpuSplit };
}

function startMeter(pgPid: number): Meter {
  const rss = sampleRss();
  const server = processCpuSeconds();
  const pgCpu = clusterCpuSeconds(pgPid);
  const busy = machineBusySeconds();
  return {
    finish(clientSeconds, events) {
      const round = (value: number) => Math.round(value * 10) / 10;
      const serverSeconds = processCpuSeconds() - server;
      const postgresSeconds = clusterCpuSeconds(pgPid) - pgCpu;
      const machineSeconds = machineBusySeconds() - busy;
      return {
        peakRssMb: rss.stop(),
        cpu: {
          serverSeconds: round(serverSeconds),
          clientSeconds: round(clientSeconds),
          postgresSeconds: round(postgresSeconds),
          machineBusySeconds: round(machineSeconds),
          otherSeconds: round(Math.max(0, machineSeconds - serverSeconds - clientSeconds - postgresSeconds)),
          microsPerEvent: Math.round(((serverSeconds + clientSeconds + postgresSeconds) / Math.max(1, events)) * 1e6),
        },
      };
    },
  };
}

/**
 * The collection server's work for a batch, minus the database: body reading, write-key auth
 * (cached, as in production), batch and per-event validation, normalisation and the response.
 * Registered next to the real routes so it runs inside the same Fastify instance.
 */
async function registerNoStoreRoute(app: FastifyInstance, db: Db): Promise<void> {
  const keys = createKeyResolver(db);
  const checkBatch = TypeCompiler.Compile(BatchSchema);
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (request, _payload, done) => {
      readJsonBody(request.raw, LIMITS.batchBytes).then(
        (body) => done(null, body),
        (error: Error) => done(error, undefined),
      );
    });
    // The same access declaration as the collection routes: the access hook (privacy/access.ts)
    // closes any route without one (403 route_without_permission), and it resolves the write key
    // once the body is read, as for POST /v1/batch.
    const config = { permission: 'events.write', credentialsInBody: true };
    scope.post(NO_STORE_PATH, { config, schema: { response: { 200: IngestResponseSchema } } }, async (request) => {
      const principal = request.access?.principal;
      let resolved = principal?.kind === 'key' ? principal.key : null;
      if (!resolved) {
        const key = presentedWriteKey(request, request.body);
        resolved = key ? await keys.resolve(key) : null;
      }
      if (!resolved || resolved.kind !== 'write') throw new ApiError(401, 'unauthorized', 'Unknown or disabled write key');
      const body = request.body;
      if (!checkBatch.Check(body)) throw new ApiError(400, 'invalid_request', 'a batch body is {"batch": [events]}', 'batch');
      const receivedAt = new Date();
      const defaults = { context: body.context, integrations: body.integrations, sentAt: body.sentAt };
      let accepted = 0;
      for (const item of body.batch) {
        if (normalizeEvent(item, { receivedAt, batch: defaults }).ok) accepted++;
      }
      return { success: true, accepted, duplicates: 0, rejected: [] };
    });
  });
}

async function runClientPhase(config: ClientConfig, pgPid: number): Promise<PhaseResult> {
  const child = forkTs(CLIENT, [JSON.stringify(config)]);
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code) => reject(new Error(`The load client exited (code ${code}) before reporting`))),
  );
  const message = () =>
    Promise.race([new Promise<unknown>((resolve) => child.once('message', resolve)), exited]);
  if ((await message()) !== 'ready') throw new Error('The load client did not start');
  const meter = startMeter(pgPid);
  child.send('go');
  const answer = (await message()) as { report?: ClientReport; error?: string };
  if (!answer.report) throw new Error(`The load client failed: ${answer.error}`);
  const report = answer.report;
  const { peakRssMb, cpu } = meter.finish(report.cpuSeconds, report.events);
  // A phase whose requests failed measured the error path, not the work: stop the run loudly.
  const failed = Object.values(report.failures).reduce((sum, n) => sum + n, 0);
  if (failed > 0 || report.accepted !== report.events) {
    throw new Error(
      `${config.url}: ${failed} of ${report.requests} requests failed (${JSON.stringify(report.failures)}), ` +
        `${report.accepted} of ${report.events} events accepted; first failure: ${report.firstFailure ?? 'none'}`,
    );
  }
  const wholeSeconds = report.eventsPerSecond.slice(0, Math.floor(report.seconds));
  return {
    events: report.events,
    requests: report.requests,
    seconds: Math.round(report.seconds * 10) / 10,
    eventsPerSecond: Math.round(report.accepted / report.seconds),
    medianEventsPerSecond: Math.round(median(wholeSeconds.length ? wholeSeconds : report.eventsPerSecond)),
    latencyMs: {
      p50: percentile(report.latenciesMs, 50),
      p90: percentile(report.latenciesMs, 90),
      p99: percentile(report.latenciesMs, 99),
      max: percentile(report.latenciesMs, 100),
    },
    p99ByThirdMs: report.latenciesByThirdMs.map((third) => percentile(third, 99)),
    peakRssMb,
    cpu,
    accepted: report.accepted,
    duplicates: report.duplicates,
    rejected: report.rejected,
    failures: report.failures,
    firstFailure: report.firstFailure,
  };
}

const BARE_COLUMNS = [
  'timestamp', 'message_id', 'type', 'event', 'name', 'category', 'user_id', 'anonymous_id',
  'properties', 'traits', 'context', 'original_timestamp', 'sent_at', 'received_at',
] as const;

function bareInsertSql(rows: number): string {
  const values: string[] = [];
  let param = 3;
  for (let row = 0; row < rows; row++) {
    values.push(`($1, $2, ${BARE_COLUMNS.map(() => `$${param++}`).join(', ')})`);
  }
  return `insert into events (workspace_id, source_id, ${BARE_COLUMNS.join(', ')}) values ${values.join(', ')}`;
}

function bareInsertParams(workspaceId: string, sourceId: string, events: BenchEvent[], receivedAt: string): unknown[] {
  const params: unknown[] = [workspaceId, sourceId];
  for (const event of events) {
    params.push(
      event.timestamp,
      event.messageId,
      event.type,
      event.event ?? null,
      event.name ?? null,
      event.category ?? null,
      event.userId ?? null,
      event.anonymousId,
      event.properties ? JSON.stringify(event.properties) : null,
      event.traits ? JSON.stringify(event.traits) : null,
      JSON.stringify(event.context),
      event.timestamp,
      event.sentAt,
      receivedAt,
    );
  }
  return params;
}

/** The driver's ceiling: the same events, `batchSize` rows per INSERT, `connections` at a time. */
async function runBareInsertPhase(
  url: string,
  ref: { workspaceId: string; sourceId: string },
  options: { runTag: string; events: number; batchSize: number; connections: number },
  pgPid: number,
): Promise<PhaseResult> {
  const pool = createPool(url, options.connections);
  const source = createBatchSource(options.runTag, options.batchSize);
  const batches = Math.ceil(options.events / options.batchSize);
  const lastSize = options.events - (batches - 1) * options.batchSize;
  const sql = new Map<number, string>();
  const statementFor = (rows: number) => {
    let text = sql.get(rows);
    if (!text) sql.set(rows, (text = bareInsertSql(rows)));
    return text;
  };
  await ensureMonthlyPartitions(pool, 'events', [new Date()]);
  // Warm the pool and the payload cache so the timed part is the inserts.
  await Promise.all(Array.from({ length: options.connections }, () => pool.query('select 1')));
  for (let batch = 0; batch < 256; batch++) source.events(batch);

  const latencies: number[] = [];
  const perSecond: number[] = [];
  let inserted = 0;
  let next = 0;
  const meter = startMeter(pgPid);
  const start = performance.now();
  const connection = async () => {
    while (next < batches) {
      const batch = next++;
      let events = source.events(batch);
      if (batch === batches - 1) events = events.slice(0, lastSize);
      const sent = performance.now();
      const result = await pool.query(statementFor(events.length), bareInsertParams(ref.workspaceId, ref.sourceId, events, new Date().toISOString()));
      const done = performance.now();
      latencies.push(done - sent);
      inserted += result.rowCount ?? 0;
      const second = Math.floor((done - start) / 1000);
      while (perSecond.length <= second) perSecond.push(0);
      perSecond[second]! += result.rowCount ?? 0;
    }
  };
  await Promise.all(Array.from({ length: options.connections }, () => connection()));
  const seconds = (performance.now() - start) / 1000;
  // The harness is the "client" here; its CPU is inside serverSeconds.
  const { peakRssMb, cpu } = meter.finish(0, inserted);
  await pool.end();
  latencies.sort((a, b) => a - b);
  const wholeSeconds = perSecond.slice(0, Math.floor(seconds));
  return {
    events: options.events,
    requests: batches,
    seconds: Math.round(seconds * 10) / 10,
    eventsPerSecond: Math.round(inserted / seconds),
    medianEventsPerSecond: Math.round(median(wholeSeconds.length ? wholeSeconds : perSecond)),
    latencyMs: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
    peakRssMb,
    cpu,
    accepted: inserted,
    duplicates: 0,
    rejected: 0,
    failures: {},
    firstFailure: null,
  };
}

interface WorkerHandle {
  stop(): Promise<void>;
}
type WorkerLog = (level: string, message: string, meta?: Record<string, unknown>) => void;
type StartWorker = (options: { db: Db; concurrency: number; logger?: WorkerLog; ingestLoad?: IngestLoad }) => Promise<WorkerHandle>;

interface BenchWorker extends WorkerHandle {
  /** Errors and warnings the worker logged while the benchmark ran (not during shutdown). */
  problems: { count: number; first: string | null };
}

/** The background worker, when this checkout has one; its catalogue and identity work are part of ingest's cost. */
async function startWorkerIfPresent(db: Db, concurrency: number, ingestLoad: IngestLoad | undefined): Promise<BenchWorker | undefined> {
  if (!fs.existsSync(WORKER_RUNNER)) return undefined;
  const runner = (await import(WORKER_RUNNER)) as { startWorker?: StartWorker };
  if (typeof runner.startWorker !== 'function') return undefined;
  const problems = { count: 0, first: null as string | null };
  let stopping = false;
  const logger: WorkerLog = (level, message) => {
    if (stopping || (level !== 'error' && level !== 'warning')) return;
    problems.count++;
    problems.first ??= `${level}: ${message}`;
  };
  const handle = await runner.startWorker({ db, concurrency, logger, ...(ingestLoad ? { ingestLoad } : {}) });
  return {
    problems,
    stop: () => {
      stopping = true;
      return handle.stop();
    },
  };
}

interface Backlog {
  jobs: number;
  jobPayloadMb: number;
  /** Stored events identity resolution has not processed yet (null before identity existed). */
  identityQueue: number | null;
  /** Requests whose catalogue observations wait in catalogue_queue (null before it existed). */
  catalogueQueue: number | null;
  catalogueQueueMb: number | null;
}

/** Work the background worker still has to do for what was ingested. */
async function backlog(db: Db): Promise<Backlog> {
  const { rows } = await db.query<{ jobs: number; bytes: number | null; identity: boolean; catalogue: boolean }>(
    `select count(*)::int as jobs, sum(pg_column_size(payload))::bigint as bytes,
            to_regclass('identity_queue') is not null as identity,
            to_regclass('catalogue_queue') is not null as catalogue
       from graphile_worker._private_jobs`,
  );
  const row = rows[0];
  const mb = (bytes: number | null) => Math.round(((bytes ?? 0) / 1024 / 1024) * 10) / 10;
  let identityQueue: number | null = null;
  if (row?.identity) {
    const { rows: queued } = await db.query<{ n: number }>('select coalesce(sum(events), 0)::int as n from identity_queue');
    identityQueue = queued[0]?.n ?? 0;
  }
  let catalogueQueue: number | null = null;
  let catalogueQueueMb: number | null = null;
  if (row?.catalogue) {
    // Refused rows stay in the queue for inspection; they are not work left (verification reports them).
    const { rows: queued } = await db.query<{ n: number; bytes: number | null }>(
      'select count(*)::int as n, sum(pg_column_size(observations))::bigint as bytes from catalogue_queue where refused_reason is null',
    );
    catalogueQueue = queued[0]?.n ?? 0;
    catalogueQueueMb = mb(queued[0]?.bytes ?? null);
  }
  return { jobs: row?.jobs ?? 0, jobPayloadMb: mb(row?.bytes ?? null), identityQueue, catalogueQueue, catalogueQueueMb };
}

const isCaughtUp = (left: Backlog) => left.jobs === 0 && !left.identityQueue && !left.catalogueQueue;

/** Seconds until the worker has caught up with everything ingested, or null after `timeoutMs`. */
async function waitForBacklog(db: Db, timeoutMs: number): Promise<number | null> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    const left = await backlog(db);
    if (isCaughtUp(left)) return Math.round((performance.now() - start) / 100) / 10;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return null;
}

export async function benchIngest(options: IngestOptions = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.log(line));
  const events = options.events ?? 1_000_000;
  const batchSize = options.batchSize ?? 100;
  const connections = options.connections ?? 16;
  const stepBack = process.env.BENCH_INGEST_STEP_BACK !== '0';
  const config = loadConfig({});
  const startedAt = new Date();

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-'));
  // As root, the embedded server runs as an unprivileged user that must reach the folder.
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const pg = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const pgPid = postmasterPid(path.join(dataDir, 'pg'));
  // The same pool size as `touchpoint start` (createPool's default).
  const db = createPool(pg.url);
  let app: FastifyInstance | undefined;
  let worker: BenchWorker | undefined;
  try {
    await migrate(db);
    await runWorkerMigrations({ pgPool: db });
    const { rows: versionRows } = await db.query<{ version: string }>('select version()');
    const { rows: settingRows } = await db.query<{ name: string; setting: string; unit: string | null }>(
      `select name, setting, unit from pg_settings
        where name in ('shared_buffers', 'synchronous_commit', 'fsync', 'max_wal_size', 'wal_level', 'checkpoint_timeout',
                       'wal_compression', 'wal_buffers', 'commit_delay')`,
    );
    const workspace = await createWorkspace(db, { slug: 'bench', name: 'Bench retail' });
    const { source, writeKey } = await createSource(db, workspace.id, { name: 'Web shop', kind: 'web' });

    // As `touchpoint start` wires them: the worker's drains step back while ingestion is saturated
    // (BENCH_INGEST_STEP_BACK=0: the worker does not see the API's load).
    const ingestLoad = createIngestLoad();
    app = await buildServer({ db, verifyAdmin: () => false, logLevel: false, ingestLoad });
    await registerNoStoreRoute(app, db);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const idleRssMb = Math.round(process.memoryUsage.rss() / 1024 / 1024);
    const client = (url: string, runTag: string): ClientConfig => ({ url, writeKey: writeKey.key, runTag, events, batchSize, connections });

    log(`(a) ${events.toLocaleString('en')} events through the server without storing …`);
    const noStore = await runClientPhase(client(`${baseUrl}${NO_STORE_PATH}`, crypto.randomBytes(4).toString('hex')), pgPid);
    const { rows: leaked } = await db.query<{ n: number }>('select count(*)::int as n from events');
    if (leaked[0]?.n !== 0) throw new Error(`The no-store phase wrote ${leaked[0]?.n} events`);
    log(`    ${noStore.eventsPerSecond.toLocaleString('en')} events/s`);

    // WAL written per event in each phase (the stored phase's includes what the worker wrote beside it).
    const walPosition = async () => (await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
    const walBytesPerEvent = async (from: string) =>
      Math.round(Number((await db.query<{ n: string }>('select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint as n', [from])).rows[0]!.n) / events);
    log(`(b) ${events.toLocaleString('en')} events by bare multi-row INSERT through the driver …`);
    const bareWal = await walPosition();
    const bare = await runBareInsertPhase(
      pg.url,
      { workspaceId: workspace.id, sourceId: source.id },
      { runTag: crypto.randomBytes(4).toString('hex'), events, batchSize, connections },
      pgPid,
    );
    const bareWalBytesPerEvent = await walBytesPerEvent(bareWal);
    log(`    ${bare.eventsPerSecond.toLocaleString('en')} events/s, ${bareWalBytesPerEvent} WAL bytes/event`);
    await db.query('truncate events, event_message_ids');
    // Start the measured phase without the previous phase's dirty pages still to be flushed.
    await db.query('checkpoint').catch(() => undefined);

    // BENCH_INGEST_WORKER=after: the worker starts once the stored phase has ended, to measure its
    // share of that phase's CPU (the catch-up then does all of its work). Default: beside the load.
    const workerAfter = process.env.BENCH_INGEST_WORKER === 'after';
    if (!workerAfter) worker = await startWorkerIfPresent(db, config.workerConcurrency, stepBack ? ingestLoad : undefined);
    log(`Stored: ${events.toLocaleString('en')} events through POST /v1/batch (worker ${worker ? 'running' : workerAfter ? 'started after the load' : 'absent'}) …`);
    const storedTag = crypto.randomBytes(4).toString('hex');
    const storedWal = await walPosition();
    const stored = await runClientPhase(client(`${baseUrl}/v1/batch`, storedTag), pgPid);
    const storedWalBytesPerEvent = await walBytesPerEvent(storedWal);
    log(`    ${stored.eventsPerSecond.toLocaleString('en')} events/s, ${storedWalBytesPerEvent} WAL bytes/event (worker's included)`);
    const drainWal = await walPosition();

    const backlogAtEnd = await backlog(db);
    if (workerAfter) worker = await startWorkerIfPresent(db, config.workerConcurrency, stepBack ? ingestLoad : undefined);
    // The worker's catch-up is part of what each event costs: measure its CPU too.
    const drainMeter = startMeter(pgPid);
    const drainSeconds = worker ? await waitForBacklog(db, DRAIN_TIMEOUT_MS) : null;
    const drainCpu = drainMeter.finish(0, events).cpu;
    const drainWalBytesPerEvent = await walBytesPerEvent(drainWal);
    const backlogAfterDrain = await backlog(db);
    const caughtUp = isCaughtUp(backlogAfterDrain);
    // Load and catch-up together: what the machine spends per event to ingest *and* process it.
    const pipelineMicrosPerEvent = caughtUp ? stored.cpu.microsPerEvent + drainCpu.microsPerEvent : null;
    const { rows: counts } = await db.query<{ events: number; message_ids: number; distinct_ids: number; foreign: number }>(
      `select (select count(*)::int from events) as events,
              (select count(*)::int from event_message_ids) as message_ids,
              (select count(distinct message_id)::int from events) as distinct_ids,
              (select count(*)::int from events where substr(message_id, 18, 8) <> $1) as foreign`,
      [storedTag],
    );
    const count = counts[0]!;
    const verification = {
      expected: events,
      rowsInEvents: count.events,
      distinctMessageIds: count.distinct_ids,
      rowsInEventMessageIds: count.message_ids,
      rowsFromOtherPhases: count.foreign,
      acknowledgedByServer: stored.accepted,
      ok:
        count.events === events &&
        count.distinct_ids === events &&
        count.message_ids === events &&
        count.foreign === 0 &&
        stored.accepted === events &&
        stored.duplicates === 0 &&
        stored.rejected === 0 &&
        Object.keys(stored.failures).length === 0,
    };
    // The catalogue is fed by the worker from what ingest queued with each batch (catalogue_queue;
    // a graphile-worker job before it): once that has drained, it should have counted every
    // stored event exactly once.
    let catalogue: { volume: number; expected: number; refusedRows: number | null; ok: boolean } | null = null;
    if (worker && backlogAfterDrain.jobs === 0 && !backlogAfterDrain.catalogueQueue) {
      const { rows } = await db.query<{ volume: number | null }>('select sum(volume)::bigint as volume from event_catalogue');
      const volume = rows[0]?.volume ?? 0;
      let refusedRows: number | null = null;
      if (backlogAfterDrain.catalogueQueue !== null) {
        const { rows: refused } = await db.query<{ n: number }>('select count(*)::int as n from catalogue_queue where refused_reason is not null');
        refusedRows = refused[0]?.n ?? 0;
      }
      catalogue = { volume, expected: count.events, refusedRows, ok: volume === count.events && !refusedRows };
    }

    const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
    const ratios = {
      storedToBareInsert: ratio(stored.eventsPerSecond, bare.eventsPerSecond),
      storedToNoStore: ratio(stored.eventsPerSecond, noStore.eventsPerSecond),
      medianStoredToMedianBareInsert: ratio(stored.medianEventsPerSecond, bare.medianEventsPerSecond),
    };
    const targets = [
      { name: 'events/s stored', target: `>= ${TARGETS.storedEventsPerSecond}`, value: stored.eventsPerSecond, met: stored.eventsPerSecond >= TARGETS.storedEventsPerSecond },
      { name: 'ratio to bare INSERT', target: `>= ${TARGETS.ratioToBareInsert}`, value: ratios.storedToBareInsert, met: ratios.storedToBareInsert >= TARGETS.ratioToBareInsert },
      { name: 'p99 request latency (ms)', target: `< ${TARGETS.p99Ms}`, value: stored.latencyMs.p99, met: stored.latencyMs.p99 < TARGETS.p99Ms },
      { name: 'server peak RSS (MB)', target: `< ${TARGETS.peakRssMb}`, value: stored.peakRssMb, met: stored.peakRssMb < TARGETS.peakRssMb },
      { name: 'rows in events = events sent', target: `= ${events}`, value: count.events, met: verification.ok },
    ];

    return {
      benchmark: 'ingest',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: {
        ...machine(),
        postgres: versionRows[0]?.version ?? 'unknown',
        postgresSettings: Object.fromEntries(
          settingRows.map((row) => [
            row.name,
            row.unit === '8kB' ? `${(Number(row.setting) * 8) / 1024} MB` : `${row.setting}${row.unit ? ` ${row.unit}` : ''}`,
          ]),
        ),
        dataDir,
        dataDisk: diskOf(dataDir),
      },
      config: {
        events,
        batchSize,
        connections,
        averageEventBytes: Math.round(averageEventBytes(batchSize)),
        poolSize: 20,
        worker: worker ? { ran: true, concurrency: config.workerConcurrency, stepsBackWhileSaturated: stepBack, startedAfterLoad: workerAfter, problems: worker.problems } : { ran: false, reason: 'server/src/worker/runner.ts not present' },
        idleServerRssMb: idleRssMb,
      },
      phases: { noStore, bareInsert: bare, stored },
      walBytesPerEvent: { bareInsert: bareWalBytesPerEvent, stored: storedWalBytesPerEvent, workerCatchUp: drainWalBytesPerEvent },
      ratios,
      worker: { backlogWhenLoadEnded: backlogAtEnd, drainSeconds, drainCpu, backlogAfterDrain, pipelineMicrosPerEvent, catalogue },
      verification,
      targets,
      summary: summaryLines({ noStore, bare, stored, ratios, targets, verification, worker: Boolean(worker), drainSeconds, backlogAtEnd, backlogAfterDrain, pipelineMicrosPerEvent, catalogue }),
    };
  } finally {
    await worker?.stop().catch(() => undefined);
    await app?.close().catch(() => undefined);
    await db.end().catch(() => undefined);
    await pg.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Filesystem type and device of the cluster's folder: fsync cost depends on it. */
function diskOf(folder: string): string {
  try {
    const line = execFileSync('df', ['-T', folder], { encoding: 'utf8' }).trim().split('\n')[1] ?? '';
    const [device, type] = line.split(/\s+/);
    return `${type} on ${device}`;
  } catch {
    return 'unknown';
  }
}

function averageEventBytes(batchSize: number): number {
  const source = createBatchSource('00000000', batchSize);
  let bytes = 0;
  let count = 0;
  for (let batch = 0; batch < 256; batch++) {
    for (const event of source.events(batch)) {
      bytes += Buffer.byteLength(JSON.stringify(event));
      count++;
    }
  }
  return bytes / count;
}

function summaryLines(input: {
  noStore: PhaseResult;
  bare: PhaseResult;
  stored: PhaseResult;
  ratios: Record<string, number>;
  targets: Array<{ name: string; target: string; value: number; met: boolean }>;
  verification: { ok: boolean; rowsInEvents: number };
  worker: boolean;
  drainSeconds: number | null;
  backlogAfterDrain: Backlog;
  pipelineMicrosPerEvent: number | null;
  backlogAtEnd: Backlog;
  catalogue: { volume: number; expected: number; refusedRows: number | null; ok: boolean } | null;
}): string[] {
  const row = (name: string, phase: PhaseResult) =>
    `${name.padEnd(26)} ${String(phase.eventsPerSecond).padStart(8)} ${String(phase.medianEventsPerSecond).padStart(8)} ` +
    `${String(phase.latencyMs.p50).padStart(7)} ${String(phase.latencyMs.p99).padStart(7)} ${String(phase.peakRssMb).padStart(6)} ` +
    `${String(phase.cpu.serverSeconds).padStart(6)} ${String(phase.cpu.clientSeconds).padStart(6)} ${String(phase.cpu.postgresSeconds).padStart(6)} ` +
    `${String(phase.cpu.otherSeconds).padStart(6)} ${String(phase.cpu.microsPerEvent).padStart(6)} ${String(phase.seconds).padStart(6)}`;
  return [
    `${'phase'.padEnd(26)} ${'ev/s'.padStart(8)} ${'median'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'RSS MB'.padStart(6)} ${'srvCPU'.padStart(6)} ${'cliCPU'.padStart(6)} ${'pgCPU'.padStart(6)} ${'other'.padStart(6)} ${'µs/ev'.padStart(6)} ${'wall s'.padStart(6)}`,
    '(CPU in seconds over the phase; "other" is busy CPU of processes outside this run; µs/ev is this run\'s CPU per event)',
    row('(a) server, no storing', input.noStore),
    row('(b) bare INSERT (driver)', input.bare),
    row('POST /v1/batch, stored', input.stored),
    `ratios: stored/bare ${input.ratios.storedToBareInsert}, stored/no-store ${input.ratios.storedToNoStore}`,
    `stored p99 by third of the load (ms): ${input.stored.p99ByThirdMs?.join(' / ') ?? '-'}`,
    `worker: ${input.worker ? 'ran' : 'absent'}; when the load ended: ${input.backlogAtEnd.jobs} jobs (${input.backlogAtEnd.jobPayloadMb} MB payload), ` +
      `${input.backlogAtEnd.identityQueue ?? 'no'} events queued for identity resolution, ` +
      `${input.backlogAtEnd.catalogueQueue ?? 'no'} requests in catalogue_queue (${input.backlogAtEnd.catalogueQueueMb ?? 0} MB)`,
    ...(input.worker
      ? [
          input.drainSeconds !== null
            ? `worker caught up ${input.drainSeconds} s after the load; load + catch-up CPU: ${input.pipelineMicrosPerEvent} µs/event`
            : `worker had not caught up ${DRAIN_TIMEOUT_MS / 1000} s after the load: ${input.backlogAfterDrain.jobs} jobs, ` +
              `${input.backlogAfterDrain.identityQueue ?? 'no'} events still queued for identity resolution, ` +
              `${input.backlogAfterDrain.catalogueQueue ?? 'no'} requests in catalogue_queue`,
        ]
      : []),
    ...(input.catalogue
      ? [
          `catalogue volume after the queue drained: ${input.catalogue.volume} of ${input.catalogue.expected} stored events ` +
            `(${input.catalogue.ok ? 'complete' : 'MISMATCH'}${input.catalogue.refusedRows ? `, ${input.catalogue.refusedRows} queue rows refused` : ''})`,
        ]
      : []),
    `rows in events: ${input.verification.rowsInEvents} (${input.verification.ok ? 'exact, no loss, no double' : 'MISMATCH'})`,
    ...input.targets.map((t) => `target ${t.name} ${t.target}: ${t.value} ${t.met ? 'met' : 'MISSED'}`),
  ];
}
