import { describe, expect, it } from 'vitest';
import { createIngestLoad, ingestSaturated, SATURATED_EVENTS_IN_FLIGHT, SATURATION_HOLD_MS, SATURATION_SUSTAIN_MS } from '../src/ingest/load.ts';
import { startPollingLoop } from '../src/worker/polling-loop.ts';

/** A loop whose chunks record when they ran; the first `working` chunks find work, the rest none. */
function recordingLoop(options: { yieldWhile?: () => boolean; maxYieldMs?: number; working?: number; pollMs?: number }) {
  const started = Date.now();
  const ranAt: number[] = [];
  const { working = 1, pollMs = 10_000, ...stepBack } = options;
  const loop = startPollingLoop({
    name: 'test',
    drainOnce: async () => {
      ranAt.push(Date.now() - started);
      return ranAt.length <= working ? 1 : 0;
    },
    pollMs,
    ...stepBack,
  });
  return { loop, ranAt };
}

const waitFor = async (check: () => boolean, ms = 5000) => {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('queue drains step back while the request path is saturated', () => {
  it('counts events in flight once they have lasted, and holds saturation through short dips', () => {
    let clock = 1_000_000;
    const load = createIngestLoad(() => clock);
    const perRequest = 100;
    const requests = SATURATED_EVENTS_IN_FLIGHT / perRequest;
    const held = Array.from({ length: requests }, () => load.enter());
    // Requests whose bodies are not read yet carry no events.
    expect(load.inFlight).toBe(requests);
    expect(load.eventsInFlight).toBe(0);
    held.slice(0, -1).forEach((request) => request.carry(perRequest));
    expect(ingestSaturated(load, clock)).toBe(false);
    held.at(-1)!.carry(perRequest);
    expect(load.eventsInFlight).toBe(SATURATED_EVENTS_IN_FLIGHT);
    // Just begun: a stall of a moment under a steady load must not hold the drains back.
    expect(ingestSaturated(load, clock)).toBe(false);
    clock += SATURATION_SUSTAIN_MS - 1;
    expect(ingestSaturated(load, clock)).toBe(false);
    clock += 1;
    expect(ingestSaturated(load, clock)).toBe(true);
    // A dip shorter than the hold does not end it.
    held[0]!.leave();
    clock += SATURATION_HOLD_MS - 100;
    held[0] = load.enter();
    held[0].carry(perRequest);
    expect(ingestSaturated(load, clock)).toBe(true);
    // One flush answers many requests at once: the count drops, the path still counts as saturated …
    held.forEach((request) => request.leave());
    expect(load.eventsInFlight).toBe(0);
    expect(load.inFlight).toBe(0);
    clock += SATURATION_HOLD_MS - 1;
    expect(ingestSaturated(load, clock)).toBe(true);
    // … until the hold has passed.
    clock += 1;
    expect(ingestSaturated(load, clock)).toBe(false);
    // A new saturation starts over.
    const again = load.enter();
    again.carry(SATURATED_EVENTS_IN_FLIGHT);
    expect(ingestSaturated(load, clock)).toBe(false);
    clock += SATURATION_SUSTAIN_MS;
    expect(ingestSaturated(load, clock)).toBe(true);
  });

  it('does not read a real-time load of many small requests as saturated', () => {
    let clock = 1_000_000;
    const load = createIngestLoad(() => clock);
    // 2,000 events/s in requests of 20 answered in 200 ms: ~20 requests, 400 events in flight.
    for (let i = 0; i < 20; i++) load.enter().carry(20);
    clock += 10 * SATURATION_SUSTAIN_MS;
    expect(load.inFlight).toBe(20);
    expect(ingestSaturated(load, clock)).toBe(false);
  });

  it('counts a request once: a second carry and a second leave change nothing', () => {
    const load = createIngestLoad();
    const request = load.enter();
    request.carry(30);
    request.carry(500);
    expect(load.eventsInFlight).toBe(30);
    request.leave();
    request.leave();
    expect(load.eventsInFlight).toBe(0);
    expect(load.inFlight).toBe(0);
    // A request that leaves before its body was read (a shed or malformed one) carries nothing.
    load.enter().leave();
    expect(load.inFlight).toBe(0);
  });

  it('waits before a chunk while saturated, and goes on as soon as it is not', async () => {
    const saturatedUntil = Date.now() + 150;
    const { loop, ranAt } = recordingLoop({ yieldWhile: () => Date.now() < saturatedUntil, maxYieldMs: 5000 });
    await waitFor(() => ranAt.length >= 1);
    await loop.stop();
    expect(ranAt[0]).toBeGreaterThanOrEqual(140);
    expect(ranAt[0]).toBeLessThan(2000);
  });

  it('never waits longer than maxYieldMs: under a lasting burst it then catches up until its queue is empty', async () => {
    // Chunks 1-3 find work, chunk 4 finds none; saturated throughout.
    const { loop, ranAt } = recordingLoop({ yieldWhile: () => true, maxYieldMs: 150, working: 3, pollMs: 10 });
    await waitFor(() => ranAt.length >= 5);
    await loop.stop();
    expect(ranAt.length).toBeGreaterThanOrEqual(5);
    // The first chunk after the step-back …
    expect(ranAt[0]).toBeGreaterThanOrEqual(140);
    // … then chunks back to back, without stepping back, until one finds nothing …
    expect(ranAt[3]! - ranAt[0]!).toBeLessThan(120);
    // … and after that (queue empty) it steps back again before the next chunk.
    expect(ranAt[4]! - ranAt[3]!).toBeGreaterThanOrEqual(140);
  });

  it('without saturation runs at once; stop() during a step-back ends the loop without running a chunk', async () => {
    const free = recordingLoop({ yieldWhile: () => false, maxYieldMs: 5000 });
    await waitFor(() => free.ranAt.length >= 1);
    await free.loop.stop();
    expect(free.ranAt[0]).toBeLessThan(100);

    const held = recordingLoop({ yieldWhile: () => true, maxYieldMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopping = Date.now();
    await held.loop.stop();
    expect(Date.now() - stopping).toBeLessThan(1000);
    expect(held.ranAt).toEqual([]);
  });
});
