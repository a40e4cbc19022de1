export interface PollingLoopOptions {
  /** Names the loop in errors handed to `onError`. */
  name: string;
  /** Does one chunk of work and returns how much it did; 0 means there was nothing to do. */
  drainOnce: () => Promise<number>;
  /** Idle wait between looks at the queue, also after an error. */
  pollMs: number;
  onError?: (error: unknown, name: string) => void;
  /**
   * Before each chunk, wait while this answers true (the request path is saturated: ingest/load.ts).
   * A wait that reaches `maxYieldMs` switches the loop to catching up: it then runs its chunks
   * without waiting until one finds nothing to do. So a burst shorter than maxYieldMs is accepted
   * with the loop out of the way, and under a lasting one the loop does its work as it would
   * without stepping back (the backlog a burst leaves is about maxYieldMs of arrivals).
   */
  yieldWhile?: () => boolean;
  maxYieldMs?: number;
}

export interface PollingLoop {
  /** Resolves once the current iteration has finished; no new one starts. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Drains a queue table for as long as there is work, then looks again every `pollMs`. For queues
 * that PostgreSQL rows carry (identity_queue, catalogue_queue): one poll per idle period costs far
 * less than a job or a NOTIFY per ingest request. A failed iteration is reported and retried
 * after `pollMs`, so a persistent error does not spin.
 */
export function startPollingLoop(options: PollingLoopOptions): PollingLoop {
  let running = true;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const idle = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, options.pollMs);
    });
  const YIELD_STEP_MS = 20;
  /** Waits while saturated; true when it gave up at maxYieldMs with the path still saturated. */
  const stepBack = async (): Promise<boolean> => {
    const until = Date.now() + (options.maxYieldMs ?? 0);
    while (running && options.yieldWhile?.()) {
      if (Date.now() >= until) return true;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, Math.min(YIELD_STEP_MS, Math.max(1, until - Date.now())));
      });
    }
    return false;
  };
  let catchingUp = false;
  const loop = (async () => {
    while (running) {
      if (options.yieldWhile && !catchingUp && (await stepBack())) catchingUp = true;
      if (!running) break;
      let done = 0;
      try {
        done = await options.drainOnce();
      } catch (error) {
        options.onError?.(error, options.name);
      }
      if (done === 0) catchingUp = false;
      if (done === 0 && running) await idle();
    }
  })();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      if (!stopped) {
        running = false;
        clearTimeout(timer);
        wake?.();
        stopped = loop;
      }
      return stopped;
    },
  };
}
