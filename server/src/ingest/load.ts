/*
 * The collection routes' work in flight, shared with the background loops of the same process
 * (`touchpoint start` runs API and worker together). While the request path is saturated, identity
 * resolution and the other queue drains step back (worker/polling-loop.ts): accepting events (the
 * committed 200 a client waits for) comes first, processing catches up after.
 *
 * Saturation is counted in events, not requests: by Little's law events in flight = events/s ×
 * request latency, so SATURATED_EVENTS_IN_FLIGHT means "the path holds a second's worth of 1,000
 * events/s" — e.g. 16 clients × 100-event batches waiting on each other, but not a real-time load
 * of 2,000 events/s in 20-event requests answered in 200 ms (400 in flight), which by a request
 * count (8 requests in flight) read as saturated.
 */

export interface IngestLoad {
  /** Collection requests received and not yet answered (load shedding counts these). */
  readonly inFlight: number;
  /** Events of the requests in flight whose bodies have been read (see InFlightRequest.carry). */
  readonly eventsInFlight: number;
  /** When events in flight were last at or above SATURATED_EVENTS_IN_FLIGHT (ms since the epoch; 0: never). */
  readonly saturatedAt: number;
  /** When the current saturation began (dips shorter than SATURATION_HOLD_MS do not end it). */
  readonly saturatedSince: number;
  /** A request arrived; its events are added once its body is read. */
  enter(): InFlightRequest;
}

export interface InFlightRequest {
  /** The request's body holds this many events (once per request; later calls are ignored). */
  carry(events: number): void;
  /** The request was answered or its connection closed (idempotent). */
  leave(): void;
}

/**
 * Events in flight at which the request path counts as saturated (clients queueing behind each
 * other): 1,000 events/s waiting a second, or 10,000 events/s waiting 100 ms.
 */
export const SATURATED_EVENTS_IN_FLIGHT = 1000;

/**
 * How long the path still counts as saturated after it was last seen so. A saturated path empties
 * for an instant whenever one WAL flush answers many requests at once; read at such an instant,
 * the bare count would let a drain start a chunk in the middle of a burst.
 */
export const SATURATION_HOLD_MS = 500;

/**
 * How long saturation must have lasted before the drains step back: a commit stall of a
 * second under a steady real-time load also piles events up, and must not hold back the identity
 * and segment drains whose lag that load is measured by.
 */
export const SATURATION_SUSTAIN_MS = 2000;

export function createIngestLoad(now: () => number = Date.now): IngestLoad {
  let inFlight = 0;
  let eventsInFlight = 0;
  let saturatedAt = 0;
  let saturatedSince = 0;
  // The path is saturated from the carry that brings the events to the threshold until the leave
  // that takes them below; a new saturation begins only after a gap of at least the hold.
  const add = (events: number) => {
    const wasSaturated = eventsInFlight >= SATURATED_EVENTS_IN_FLIGHT;
    eventsInFlight += events;
    if (eventsInFlight < SATURATED_EVENTS_IN_FLIGHT) return;
    const time = now();
    if (!wasSaturated && time - saturatedAt >= SATURATION_HOLD_MS) saturatedSince = time;
    saturatedAt = time;
  };
  return {
    get inFlight() {
      return inFlight;
    },
    get eventsInFlight() {
      return eventsInFlight;
    },
    get saturatedAt() {
      return saturatedAt;
    },
    get saturatedSince() {
      return saturatedSince;
    },
    enter() {
      inFlight++;
      let carried = 0;
      let left = false;
      return {
        carry(events) {
          if (left || carried > 0 || events <= 0) return;
          carried = events;
          add(events);
        },
        leave() {
          if (left) return;
          left = true;
          if (eventsInFlight >= SATURATED_EVENTS_IN_FLIGHT) saturatedAt = now();
          eventsInFlight -= carried;
          inFlight--;
        },
      };
    },
  };
}

/** Saturated for at least SATURATION_SUSTAIN_MS, with no gap of SATURATION_HOLD_MS or more since. */
export const ingestSaturated = (load: IngestLoad, now = Date.now()): boolean =>
  (load.eventsInFlight >= SATURATED_EVENTS_IN_FLIGHT || now - load.saturatedAt < SATURATION_HOLD_MS) && now - load.saturatedSince >= SATURATION_SUSTAIN_MS;
