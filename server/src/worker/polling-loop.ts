export interface PollingLoopOptions {
  /** Names the loop in errors handed to `onError`. */
  name: string;
  /** Does one chunk of work and returns how much it did; 0 means there was nothing to do. */
  drainOnce: () => Promise<number>;
  /** Idle wait between looks at the queue, also after an error. */
  pollMs: number;
  onError?: (error: unknown, name: string) => void;
  /**
   * Before each chunk, wait while this answers true (the request path is saturated: ingest/load.ts),
   * for at most `maxYieldMs`, so the loop steps back but never stops.
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
  const stepBack = async () => {
    const until = Date.now() + (options.maxYieldMs ?? 0);
    while (running && options.yieldWhile?.() && Date.now() < until) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, Math.min(YIELD_STEP_MS, until - Date.now()));
      });
    }
  };
  const loop = (async () => {
    while (running) {
      if (options.yieldWhile) await stepBack();
      if (!running) break;
      let done = 0;
      try {
        done = await options.drainOnce();
      } catch (error) {
        options.onError?.(error, options.name);
      }
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
