import { Logger, parseCronItems, run, type LogFunctionFactory, type TaskList } from 'graphile-worker';
import type { Db } from '../storage/database.ts';
import { drainCatalogueQueue } from '../catalogue/store.ts';
import { createIdentityDrain } from '../identity/loop.ts';
import type { EnqueueMessage } from '../channels/contract.ts';
import { oneByOne } from '../journeys/executor.ts';
import { startJourneyLoops } from '../journeys/loop.ts';
import { drainSegmentQueue, dropUnreadDigests } from '../segments/realtime.ts';
import { runDueSegments } from '../segments/schedule.ts';
import { startPollingLoop } from './polling-loop.ts';
import { ingestSaturated, type IngestLoad } from '../ingest/load.ts';
import { startChannelLoops } from '../channels/worker.ts';
import { enqueueMessages } from '../channels/index.ts';
import { trainDueRecommendations } from '../decisioning/recommend/train.ts';
import { createTaskList } from './tasks.ts';
import { scrubLogLine } from '../privacy/log-scrub.ts';
import { applyRetention } from '../privacy/retention.ts';
import { backfillTotal, describeBackfillCounts, encryptAllExistingPii } from '../privacy/pii-backfill.ts';

export type WorkerLogLevel = 'error' | 'warning' | 'info' | 'debug';
export type WorkerLog = (level: WorkerLogLevel, message: string, meta?: Record<string, unknown>) => void;

export interface WorkerOptions {
  db: Db;
  /** Jobs run at once; each holds one pool connection while it works. */
  concurrency: number;
  /** Where the worker's messages go; by default warnings and errors as JSON lines on stderr. */
  logger?: WorkerLog;
  /** Tasks added to the built-in ones (a name already taken is refused). */
  tasks?: TaskList;
  /** Real-time segments read per-profile event digests (segments/digests.ts; default off). */
  segmentDigests?: boolean;
  /** channels/' enqueue for journey send steps. */
  enqueueMessage?: EnqueueMessage;
  /**
   * The collection requests in flight of an API in this process (ingest/load.ts): while it is
   * saturated, the identity, catalogue and segment drains step back (for at most MAX_STEP_BACK_MS,
   * then they catch up: worker/polling-loop.ts).
   */
  ingestLoad?: IngestLoad;
  /** The longest step-back before a drain catches up (default MAX_STEP_BACK_MS; tests shorten it). */
  maxStepBackMs?: number;
}

export interface RunningWorker {
  /** Stops taking jobs and resolves once the running ones have finished. */
  stop(): Promise<void>;
}

const IDENTITY_POLL_MS = 100;
// Queue rows (one per ingest request, ~100 events) per catalogue transaction, and the idle wait:
// the catalogue may lag a second, and larger drains merge more requests into each upsert.
const CATALOGUE_DRAIN_ROWS = 500;
const CATALOGUE_POLL_MS = 1000;
// Event stored → membership updated is the identity poll plus this one when idle (target p99 < 1 s);
// under load both loops run back to back.
const SEGMENT_POLL_MS = 50;
const SEGMENT_BATCH = 500;
// The longest a queue drain waits for a saturated request path; after that it runs without waiting
// until its queue is empty. Beside a saturating ingest the drains cost ~40 % of the stored phase's
// CPU (181 against 110 µs per stored event with the worker started after the load, ingest-cpu in
// docs/benchmarks.md): a burst of up to a minute is now accepted with the machine to itself and
// processed after it. (A 2 s wait per chunk, e298d2b, showed no effect and was reverted.)
const MAX_STEP_BACK_MS = 60_000;
// Periodic segments run on cron schedules (minute resolution at best).
const SEGMENT_SCHEDULE_MS = 10_000;
// How often digests nothing reads are looked for (at start, then this often): digests switched
// off, or no real-time segment reading events any more (segments/realtime.ts, dropUnreadDigests).
const DIGEST_UPKEEP_MS = 60_000;

const jsonLines: WorkerLog = (level, message, meta) => {
  if (level !== 'error' && level !== 'warning') return;
  const error = meta?.error instanceof Error ? { error: meta.error.message } : {};
  // Scrubbed: an error's message may quote a row (privacy/log-scrub.ts).
  console.error(scrubLogLine(JSON.stringify({ level: level === 'warning' ? 'warn' : level, time: Date.now(), msg: message, component: 'worker', ...error })));
};

function toGraphileLogger(log: WorkerLog): Logger {
  const factory: LogFunctionFactory = (scope) => (level, message, meta) =>
    log(level as WorkerLogLevel, message, { ...scope, ...meta });
  return new Logger(factory);
}

/**
 * Runs the background jobs (graphile-worker) on the application's pool. Signals are left to the
 * caller (`touchpoint start` stops the HTTP server first, then the worker, then storage).
 */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const taskList = createTaskList(options.db);
  for (const [name, task] of Object.entries(options.tasks ?? {})) {
    if (name in taskList) throw new Error(`Task "${name}" is built in and cannot be replaced`);
    taskList[name] = task;
  }
  const runner = await run({
    pgPool: options.db,
    concurrency: options.concurrency,
    noHandleSignals: true,
    taskList,
    // No crontab: without this graphile-worker would look for a ./crontab file in the cwd.
    parsedCronItems: parseCronItems([]),
    logger: toGraphileLogger(options.logger ?? jsonLines),
  });
  // What every ingest request feeds is drained from queue tables rather than jobs, which would
  // cost a job row (and a NOTIFY) per request. Identity resolution must take events in arrival
  // order, per workspace, in large batches; the catalogue adds up whatever has arrived.
  const log = options.logger ?? jsonLines;
  const onError = (error: unknown, name: string) => log('error', `${name} failed`, { error });
  const load = options.ingestLoad;
  const stepBack = load ? { yieldWhile: () => ingestSaturated(load), maxYieldMs: options.maxStepBackMs ?? MAX_STEP_BACK_MS } : {};
  const identity = startPollingLoop({
    name: 'identity resolution',
    drainOnce: createIdentityDrain(options.db),
    pollMs: IDENTITY_POLL_MS,
    onError,
    ...stepBack,
  });
  const catalogue = startPollingLoop({
    name: 'catalogue',
    drainOnce: async () => {
      const { taken, refused } = await drainCatalogueQueue(options.db, CATALOGUE_DRAIN_ROWS);
      for (const row of refused) {
        log('error', `catalogue_queue row ${row.queueId} of workspace ${row.workspaceId} refused, kept in the queue: ${row.reason}`);
      }
      return taken;
    },
    pollMs: CATALOGUE_POLL_MS,
    onError,
    ...stepBack,
  });
  // Profiles whose data changed (queued in the same transaction as the change) and due re-checks.
  const segments = startPollingLoop({
    name: 'real-time segments',
    drainOnce: () => drainSegmentQueue(options.db, { batchSize: SEGMENT_BATCH, digests: options.segmentDigests ?? false, parallel: true, onError: (error, message) => log('error', message, { error }) }),
    pollMs: SEGMENT_POLL_MS,
    onError,
    ...stepBack,
  });
  const schedule = startPollingLoop({
    name: 'segment schedule',
    drainOnce: async () => {
      for (const outcome of await runDueSegments(options.db, new Date())) {
        if (outcome.state === 'failed') log('error', `periodic segment ${outcome.key} failed: ${outcome.error ?? 'unknown error'}`);
      }
      return 0;
    },
    pollMs: SEGMENT_SCHEDULE_MS,
    onError,
  });
  const digestUpkeep = startPollingLoop({
    name: 'segment digest upkeep',
    drainOnce: async () => {
      const dropped = await dropUnreadDigests(options.db, options.segmentDigests ?? false);
      if (dropped > 0) log('info', `segment event digests of ${dropped} workspace(s) dropped: no drain reads them`);
      return 0;
    },
    pollMs: DIGEST_UPKEEP_MS,
    onError,
  });
  const journeys = startJourneyLoops({
    db: options.db,
    enqueue: options.enqueueMessage ? oneByOne(options.enqueueMessage) : enqueueMessages,
    onError,
    onStepFailure: (failure) => log('warning', `journey instance ${failure.instanceId} step failed, retrying: ${failure.error}`),
  });
  const channels = startChannelLoops(options.db, onError);
  // Recommendation models retrain hourly per workspace (decisioning/recommend/train.ts).
  const recommendations = startPollingLoop({
    name: 'recommendation training',
    drainOnce: async () => (await trainDueRecommendations(options.db, new Date()), 0),
    pollMs: 60_000,
    onError,
  });
  // Retention (privacy/retention.ts): old events, partitions and inactive profiles, hourly.
  const retention = startPollingLoop({ name: 'privacy retention', drainOnce: async () => (await applyRetention(options.db, new Date()), 0), pollMs: 3_600_000, onError });
  // Personal data stored in plain text (by a version before field-level encryption, or an older
  // process still running during an upgrade) is encrypted once per start, in the background.
  const backfillAbort = new AbortController();
  const backfill = encryptAllExistingPii(options.db, {
    signal: backfillAbort.signal,
    onWorkspace: (workspaceId, counts) => {
      if (backfillTotal(counts) > 0) log('warning', `PII backfill: workspace ${workspaceId} held plaintext personal data; encrypted ${describeBackfillCounts(counts)}`);
    },
  }).then(
    (result) =>
      log('info', `PII backfill done: ${result.workspaces} workspace(s) walked, ${result.skippedClean} found clean before, ${result.hashKeysSealed} pending hash key(s) sealed; encrypted ${describeBackfillCounts(result.totals)}`),
    (error: unknown) => {
      if (!backfillAbort.signal.aborted) onError(error, 'PII backfill');
    },
  );
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      backfillAbort.abort(); // resumed at the next start: the pass is idempotent
      stopped ??= Promise.all([runner.stop(), identity.stop(), catalogue.stop(), segments.stop(), schedule.stop(), digestUpkeep.stop(), journeys.stop(), channels.stop(), recommendations.stop(), retention.stop(), backfill]).then(() => undefined);
      return stopped;
    },
  };
}
