import type { Db } from '../storage/database.ts';
import { startPollingLoop, type PollingLoop } from '../worker/polling-loop.ts';
import { advanceDueInstances, DEFAULT_BATCH, type EnqueueMessages } from './executor.ts';
import { drainJourneyEvents, drainSegmentEntries } from './intake.ts';
import { drainScheduledEntries } from './schedules.ts';

export interface JourneyLoopOptions {
  db: Db;
  /** channels/' batch enqueue; without it a send step fails and its instance retries with backoff (nothing is lost). */
  enqueue?: EnqueueMessages;
  now?: () => Date;
  onError: (error: unknown, name: string) => void;
  /**
   * Executor loops in this process (default 2): while one waits on PostgreSQL the other walks its
   * batch; SKIP LOCKED keeps their batches apart.
   */
  executors?: number;
  /** Instance steps that failed (they are retried with backoff). */
  onStepFailure?: (failure: { instanceId: string; error: string }) => void;
}

// Idle look for due timers (one index probe): wake-up lag is at most this plus a batch (target
// ≤ 1 s). While timers are due the loop takes batch after batch without sleeping.
const EXECUTOR_POLL_MS = 100;
// Segment transition → entry and event → wait/goal are this plus the settle wait when idle.
const INTAKE_POLL_MS = 100;
const SCHEDULE_POLL_MS = 1_000;

const notConfigured: EnqueueMessages = async () => {
  throw new Error('Message delivery (channels) is not configured in this worker');
};

/** The executor and the two intake loops, as polling loops of the worker. */
export function startJourneyLoops(options: JourneyLoopOptions): PollingLoop {
  const now = options.now ?? (() => new Date());
  const deps = { db: options.db, enqueue: options.enqueue ?? notConfigured, now };
  const executors = Array.from({ length: Math.max(1, options.executors ?? 2) }, () =>
    startPollingLoop({
      name: 'journey executor',
      drainOnce: async () => {
        const { taken, failed } = await advanceDueInstances(deps, DEFAULT_BATCH);
        for (const failure of failed) options.onStepFailure?.(failure);
        return taken;
      },
      pollMs: EXECUTOR_POLL_MS,
      onError: options.onError,
    }),
  );
  const loops = [
    ...executors,
    startPollingLoop({ name: 'journey segment entries', drainOnce: () => drainSegmentEntries(options.db, now()), pollMs: INTAKE_POLL_MS, onError: options.onError }),
    startPollingLoop({ name: 'journey events', drainOnce: () => drainJourneyEvents(options.db, now()), pollMs: INTAKE_POLL_MS, onError: options.onError }),
    // Date-trait scans and scheduled audiences: minute precision is what they promise.
    startPollingLoop({
      name: 'journey schedules',
      drainOnce: async () => ((await drainScheduledEntries(options.db, now())) > 0 ? 1 : 0),
      pollMs: SCHEDULE_POLL_MS,
      onError: options.onError,
    }),
  ];
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= Promise.all(loops.map((loop) => loop.stop())).then(() => undefined);
      return stopped;
    },
  };
}
