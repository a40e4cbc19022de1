import type { Db } from '../storage/database.ts';
import { resolveQueuedEvents, workspacesWithQueuedEvents } from './resolver.ts';

export interface IdentityLoopOptions {
  db: Db;
  /** Idle wait between looks at the queue. */
  pollMs?: number;
  batchSize?: number;
  onError?: (error: unknown) => void;
}

/**
 * Keeps resolving queued events: drains every workspace with waiting events, then sleeps
 * `pollMs`. Several processes may run it; the per-workspace identity lock serialises them.
 */
export function startIdentityLoop(options: IdentityLoopOptions): { stop(): Promise<void> } {
  const pollMs = options.pollMs ?? 100;
  let running = true;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (running) {
      let worked = false;
      try {
        for (const workspaceId of await workspacesWithQueuedEvents(options.db)) {
          while (running && (await resolveQueuedEvents(options.db, workspaceId, options.batchSize)) > 0) worked = true;
        }
      } catch (error) {
        options.onError?.(error);
      }
      if (!worked && running) await new Promise<void>((resolve) => ((wake = resolve), setTimeout(resolve, pollMs)));
    }
  })();
  return {
    async stop() {
      running = false;
      wake?.();
      await loop;
    },
  };
}
