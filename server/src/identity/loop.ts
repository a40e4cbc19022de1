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

/**
 * One pass over the workspaces with queued events, one batch each, so a workspace with a large
 * backlog (an import) does not hold up the others. Returns the events resolved.
 */
export async function resolveOnePass(db: Db, batchSize?: number): Promise<number> {
  let resolved = 0;
  for (const workspaceId of await workspacesWithQueuedEvents(db)) resolved += await resolveQueuedEvents(db, workspaceId, batchSize);
  return resolved;
}

/**
 * Keeps resolving queued events, sleeping `pollMs` when none wait. Several processes may run it;
 * the per-workspace identity lock serialises them.
 */
export function startIdentityLoop(options: IdentityLoopOptions): PollingLoop {
  return startPollingLoop({
    name: 'identity resolution',
    drainOnce: () => resolveOnePass(options.db, options.batchSize),
    pollMs: options.pollMs ?? 100,
    onError: options.onError,
  });
}
