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
  /** When the current saturation began (dips shorter than SATURATION_HOLD_MS do not end it). */
  readonly saturatedSince: number;
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

/**
 * How long saturation must have lasted before the drains step back: a commit stall of a second
 * under a steady real-time load (2,000 events/s) also piles up eight requests, and must not hold
 * back the identity and segment drains whose lag that load is measured by.
 */
export const SATURATION_SUSTAIN_MS = 2000;

export function createIngestLoad(now: () => number = Date.now): IngestLoad {
  let inFlight = 0;
  let saturatedAt = 0;
  let saturatedSince = 0;
  // The path is saturated from the enter that brings the count to the threshold until the leave
  // that takes it below; a new saturation begins only after a gap of at least the hold.
  return {
    get inFlight() {
      return inFlight;
    },
    get saturatedAt() {
      return saturatedAt;
    },
    get saturatedSince() {
      return saturatedSince;
    },
    enter() {
      inFlight++;
      if (inFlight < SATURATED_IN_FLIGHT) return;
      const time = now();
      if (inFlight === SATURATED_IN_FLIGHT && time - saturatedAt >= SATURATION_HOLD_MS) saturatedSince = time;
      saturatedAt = time;
    },
    leave() {
      if (inFlight >= SATURATED_IN_FLIGHT) saturatedAt = now();
      inFlight--;
    },
  };
}

/** Saturated for at least SATURATION_SUSTAIN_MS, with no gap of SATURATION_HOLD_MS or more since. */
export const ingestSaturated = (load: IngestLoad, now = Date.now()): boolean =>
  (load.inFlight >= SATURATED_IN_FLIGHT || now - load.saturatedAt < SATURATION_HOLD_MS) && now - load.saturatedSince >= SATURATION_SUSTAIN_MS;
