import { describe, expect, it } from 'vitest';
import { createIngestLoad, ingestSaturated, SATURATED_IN_FLIGHT } from '../src/ingest/load.ts';
import { startPollingLoop } from '../src/worker/polling-loop.ts';

/** A loop whose chunks record when they ran; the first chunk finds work, the rest none. */
function recordingLoop(options: { yieldWhile?: () => boolean; maxYieldMs?: number }) {
  const started = Date.now();
  const ranAt: number[] = [];
  const loop = startPollingLoop({
    name: 'test',
    drainOnce: async () => {
      ranAt.push(Date.now() - started);
      return ranAt.length === 1 ? 1 : 0;
    },
    pollMs: 10_000,
    ...options,
  });
  return { loop, ranAt };
}

const waitFor = async (check: () => boolean, ms = 5000) => {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('queue drains step back while the request path is saturated', () => {
  it('counts saturation from the requests in flight', () => {
    const load = createIngestLoad();
    for (let i = 0; i < SATURATED_IN_FLIGHT - 1; i++) load.enter();
    expect(ingestSaturated(load)).toBe(false);
    load.enter();
    expect(ingestSaturated(load)).toBe(true);
    load.leave();
    expect(ingestSaturated(load)).toBe(false);
  });

  it('waits before a chunk while saturated, and goes on as soon as it is not', async () => {
    const saturatedUntil = Date.now() + 150;
    const { loop, ranAt } = recordingLoop({ yieldWhile: () => Date.now() < saturatedUntil, maxYieldMs: 5000 });
    await waitFor(() => ranAt.length >= 1);
    await loop.stop();
    expect(ranAt[0]).toBeGreaterThanOrEqual(140);
    expect(ranAt[0]).toBeLessThan(2000);
  });

  it('never waits longer than maxYieldMs: under a lasting burst the work still goes on', async () => {
    const { loop, ranAt } = recordingLoop({ yieldWhile: () => true, maxYieldMs: 100 });
    await waitFor(() => ranAt.length >= 2);
    await loop.stop();
    // The first chunk after ~100 ms, the second (it found work) again after ~100 ms.
    expect(ranAt.length).toBeGreaterThanOrEqual(2);
    expect(ranAt[0]).toBeGreaterThanOrEqual(90);
    expect(ranAt[1]! - ranAt[0]!).toBeGreaterThanOrEqual(90);
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
