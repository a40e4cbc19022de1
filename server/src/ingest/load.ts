/*
 * The collection routes' requests in flight, shared with the background loops of the same process
 * (`touchpoint start` runs API and worker together). While the request path is saturated, identity
 * resolution and the other queue drains step back (worker/polling-loop.ts): accepting events (the
 * committed 200 a client waits for) comes first, processing catches up after. Below saturation
 * (e.g. 2,000 events/s in requests of 100: well under one request in flight on average) nothing
 * waits.
 */

export interface IngestLoad {
  /** Collection requests received and not yet answered. */
  readonly inFlight: number;
  /** When requests in flight last reached SATURATED_IN_FLIGHT (ms since the epoch; 0: never). */
  readonly saturatedAt: number;
  enter(): void;
  leave(): void;
}

/** Requests in flight at which the request path counts as saturated (clients queueing behind each other). */
export const SATURATED_IN_FLIGHT = 8;

/**
 * How long the path still counts as saturated after it was last seen so. A saturated path empties
 * for an instant whenever one WAL flush answers many requests at once; read at such an instant,
 * the bare count would let a drain start a chunk in the middle of a burst.
 */
export const SATURATION_HOLD_MS = 500;

export function createIngestLoad(now: () => number = Date.now): IngestLoad {
  let inFlight = 0;
  let saturatedAt = 0;
  return {
    get inFlight() {
      return inFlight;
    },
    get saturatedAt() {
      return saturatedAt;
    },
    enter() {
      inFlight++;
      if (inFlight >= SATURATED_IN_FLIGHT) saturatedAt = now();
    },
    leave() {
      if (inFlight >= SATURATED_IN_FLIGHT) saturatedAt = now();
      inFlight--;
    },
  };
}

export const ingestSaturated = (load: IngestLoad, now = Date.now()): boolean =>
  load.inFlight >= SATURATED_IN_FLIGHT || now - load.saturatedAt < SATURATION_HOLD_MS;
