import type { EnqueueMessage } from '../channels/contract.ts';
import type { Db } from '../storage/database.ts';
import { startPollingLoop, type PollingLoop } from '../worker/polling-loop.ts';
import { advanceDueInstances } from './executor.ts';
import { drainJourneyEvents, drainSegmentEntries } from './intake.ts';
import { drainScheduledEntries } from './schedules.ts';

export interface JourneyLoopOptions {
  db: Db;
  /** channels/' enqueue; without it a send step fails and its instance retries with backoff (nothing is lost). */
  enqueue?: EnqueueMessage;
  now?: () => Date;
  onError: (error: unknown, name: string) => void;
  /** Instance steps that failed (they are retried with backoff). */
  onStepFailure?: (failure: { instanceId: string; error: string }) => void;
}

// Idle look for due timers: wake-up lag is at most this plus a batch (target ≤ 1 s).
const EXECUTOR_POLL_MS = 100;
const EXECUTOR_BATCH = 200;
// Segment transition → entry and event → wait/goal are this plus the settle wait when idle.
const INTAKE_POLL_MS = 100;
const SCHEDULE_POLL_MS = 1_000;

const notConfigured: EnqueueMessage = async () => {
  throw new Error('Message delivery (channels) is not configured in this worker');
};

/** The executor and the two intake loops, as polling loops of the worker. */
export function startJourneyLoops(options: JourneyLoopOptions): PollingLoop {
  const now = options.now ?? (() => new Date());
  const deps = { db: options.db, enqueue: options.enqueue ?? notConfigured, now };
  const loops = [
    startPollingLoop({
      name: 'journey executor',
      drainOnce: async () => {
        const { taken, failed } = await advanceDueInstances(deps, EXECUTOR_BATCH);
        for (const failure of failed) options.onStepFailure?.(failure);
        return taken;
      },
      pollMs: EXECUTOR_POLL_MS,
      onError: options.onError,
    }),
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
