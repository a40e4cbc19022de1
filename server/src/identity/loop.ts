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

// Listing the workspaces with queued events reads the whole queue (select distinct: ~70 ms with
// 900,000 events queued), so the list is kept between batches and asked again only once every
// workspace on it is drained, or after REFRESH_MS so a new workspace does not wait behind a long
// backlog. Asking before every batch made catching up after a burst cost half as much again.
const REFRESH_MS = 5000;

/**
 * One batch of each workspace with queued events per call, so a workspace with a large backlog
 * (an import) does not hold up the others. Each call returns the events it resolved.
 */
export function createIdentityDrain(db: Db, batchSize?: number): () => Promise<number> {
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
