import { Logger, parseCronItems, run, type LogFunctionFactory, type TaskList } from 'graphile-worker';
import type { Db } from '../storage/database.ts';
import { startIdentityLoop } from '../identity/loop.ts';
import { createTaskList } from './tasks.ts';

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
}

export interface RunningWorker {
  /** Stops taking jobs and resolves once the running ones have finished. */
  stop(): Promise<void>;
}

const jsonLines: WorkerLog = (level, message, meta) => {
  if (level !== 'error' && level !== 'warning') return;
  const error = meta?.error instanceof Error ? { error: meta.error.message } : {};
  console.error(JSON.stringify({ level: level === 'warning' ? 'warn' : level, time: Date.now(), msg: message, component: 'worker', ...error }));
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
  // Identity resolution drains its own ordered queue (identity_queue) rather than jobs: it must
  // take events in arrival order, per workspace, in large batches.
  const log = options.logger ?? jsonLines;
  const identity = startIdentityLoop({
    db: options.db,
    onError: (error) => log('error', 'identity resolution failed', { error }),
  });
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= Promise.all([runner.stop(), identity.stop()]).then(() => undefined);
      return stopped;
    },
  };
}
