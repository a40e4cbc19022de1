import type { Db } from '../storage/database.ts';
import { startPollingLoop, type PollingLoop } from '../worker/polling-loop.ts';
import { resolveQueuedEvents, workspacesWithQueuedEvents } from './resolver.ts';

export interface IdentityLoopOptions {
  db: Db;
  /** Idle wait between looks at the queue. */
  pollMs?: number;
  batchSize?: number;
  onError?: (error: unknown) => void;
}

// The list of workspaces with queued events is kept between batches and asked again only once
// every workspace on it is drained, or after REFRESH_MS so a new workspace does not wait behind a
// long backlog.
const REFRESH_MS = 5000;

/**
 * Most events one resolver transaction takes. When fewer are queued (the steady state: a poll's
 * worth) a batch is what is there; behind a backlog, larger batches resolve each event for less,
 * because a person's events fall into fewer batches, so each profile is loaded and written fewer
 * times (benchmark: 196 µs of CPU per event at 1,000, 143 at 5,000, 116 at 10,000). The cost is
 * the time a batch holds the workspace's identity lock (and, when it merges, the segment lock):
 * about half a second at 5,000.
 */
export const IDENTITY_BATCH = 5000;

/**
 * One batch of each workspace with queued events per call, so a workspace with a large backlog
 * (an import) does not hold up the others. Each call returns the events it resolved.
 */
export function createIdentityDrain(db: Db, batchSize = IDENTITY_BATCH): () => Promise<number> {
  let workspaces: string[] = [];
  let listedAt = 0;
  return async () => {
    if (workspaces.length === 0 || Date.now() - listedAt >= REFRESH_MS) {
      workspaces = await workspacesWithQueuedEvents(db);
      listedAt = Date.now();
    }
    let resolved = 0;
    const busy: string[] = [];
    for (const workspaceId of workspaces) {
      const taken = await resolveQueuedEvents(db, workspaceId, batchSize);
      resolved += taken;
      if (taken > 0) busy.push(workspaceId);
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
    drainOnce: createIdentityDrain(options.db, options.batchSize),
    pollMs: options.pollMs ?? 100,
    onError: options.onError,
  });
}
