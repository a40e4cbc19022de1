import type { Db } from '../storage/database.ts';
import { startPollingLoop, type PollingLoop } from '../worker/polling-loop.ts';
import { resolveQueuedEvents, workspacesWithQueuedEvents } from './resolver.ts';

export interface IdentityLoopOptions {
  db: Db;
  /** Idle wait between looks at the queue. */
  pollMs?: number;
  /** Events a batch takes to begin with (IDENTITY_BATCH), and most behind a backlog (IDENTITY_BATCH_MAX; `batchSize` when only it is given). */
  batchSize?: number;
  maxBatchSize?: number;
  onError?: (error: unknown) => void;
}

// The list of workspaces with queued events is kept between batches and asked again only once
// every workspace on it is drained, or after REFRESH_MS so a new workspace does not wait behind a
// long backlog.
const REFRESH_MS = 5000;

/**
 * Events a resolver transaction takes to begin with. When fewer are queued (the steady state: a
 * poll's worth) a batch is what is there; behind a backlog, larger batches resolve each event for
 * less, because a person's events fall into fewer batches, so each profile is loaded and written
 * fewer times (benchmark: 196 µs of CPU per event at 1,000, 143 at 5,000, 116 at 10,000). The cost
 * is the time a batch holds the workspace's identity lock (and, when it merges, the segment lock):
 * about half a second at 5,000.
 */
export const IDENTITY_BATCH = 5000;

/**
 * Most events a batch takes behind a long backlog (an import, a worker catching up): a workspace's
 * batch doubles from IDENTITY_BATCH while each one comes back full, up to this, and falls back to
 * IDENTITY_BATCH at the first batch that is not. Behind a backlog events wait for the backlog
 * anyway, and throughput is what shortens that wait; a caught-up workspace never grows its batch,
 * so real-time latency and lock hold times stay as at IDENTITY_BATCH. The price: behind a backlog
 * an unmerge, unbind, operator merge, privacy step or journey trait write of that workspace waits
 * for up to one such batch (~2 s quiet at 20,000), and a merging batch holds the segment lock for
 * its writes (docs/benchmarks.md, id-fast).
 */
export const IDENTITY_BATCH_MAX = 20_000;

/** The next batch's size: doubled after a full batch (a backlog), up to `max`; else `base`. */
export function nextBatchSize(size: number, taken: number, base: number, max: number): number {
  return taken >= size ? Math.min(size * 2, Math.max(base, max)) : base;
}

/**
 * One batch of each workspace with queued events per call, so a workspace with a large backlog
 * (an import) does not hold up the others. Each call returns the events it resolved. A workspace's
 * batch grows from `batchSize` to `maxBatchSize` while its batches come back full (nextBatchSize).
 */
export function createIdentityDrain(
  db: Db,
  batchSize = IDENTITY_BATCH,
  maxBatchSize = batchSize === IDENTITY_BATCH ? IDENTITY_BATCH_MAX : batchSize,
): () => Promise<number> {
  let workspaces: string[] = [];
  let listedAt = 0;
  const sizes = new Map<string, number>();
  return async () => {
    if (workspaces.length === 0 || Date.now() - listedAt >= REFRESH_MS) {
      workspaces = await workspacesWithQueuedEvents(db);
      listedAt = Date.now();
    }
    let resolved = 0;
    const busy: string[] = [];
    for (const workspaceId of workspaces) {
      const size = sizes.get(workspaceId) ?? batchSize;
      const taken = await resolveQueuedEvents(db, workspaceId, size);
      resolved += taken;
      if (taken > 0) busy.push(workspaceId);
      const next = nextBatchSize(size, taken, batchSize, maxBatchSize);
      if (next === batchSize) sizes.delete(workspaceId);
      else sizes.set(workspaceId, next);
    }
    workspaces = busy;
    return resolved;
  };
}

/**
 * Keeps resolving queued events, sleeping `pollMs` when none wait. Several processes may run it;
 * the per-workspace identity lock serialises them.
 */
export function startIdentityLoop(options: IdentityLoopOptions): PollingLoop {
  return startPollingLoop({
    name: 'identity resolution',
    drainOnce: createIdentityDrain(options.db, options.batchSize, options.maxBatchSize ?? options.batchSize),
    pollMs: options.pollMs ?? 100,
    onError: options.onError,
  });
}
