export interface PollingLoopOptions {
  /** Names the loop in errors handed to `onError`. */
  name: string;
  /** Does one chunk of work and returns how much it did; 0 means there was nothing to do. */
  drainOnce: () => Promise<number>;
  /** Idle wait between looks at the queue, also after an error. */
  pollMs: number;
  onError?: (error: unknown, name: string) => void;
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
  const loop = (async () => {
    while (running) {
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
