/*
 * The collection routes' requests in flight, shared with the background loops of the same process
 * (`touchpoint start` runs API and worker together). While the request path is saturated, identity
 * resolution and the other queue drains step back for a bounded time before each chunk: accepting
 * events (the committed 200 a client waits for) comes first, processing catches up after. Below
 * saturation (e.g. 2,000 events/s in requests of 100: well under one request in flight on average)
 * nothing waits.
 */

export interface IngestLoad {
  /** Collection requests received and not yet answered. */
  readonly inFlight: number;
  enter(): void;
  leave(): void;
}

/** Requests in flight at which the request path counts as saturated (clients queueing behind each other). */
export const SATURATED_IN_FLIGHT = 8;

export function createIngestLoad(): IngestLoad {
  let inFlight = 0;
  return {
    get inFlight() {
      return inFlight;
    },
    enter() {
      inFlight++;
    },
    leave() {
      inFlight--;
    },
  };
}

export const ingestSaturated = (load: IngestLoad): boolean => load.inFlight >= SATURATED_IN_FLIGHT;
