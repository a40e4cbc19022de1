/*
 * What each committed real-time drain batch did, for whoever listens (benchmarks, diagnostics):
 * how many profiles, and for the queued ones how long each waited from being queued
 * (segment_queue.queued_at, the enqueuing transaction's start) to the commit that updated its
 * memberships — the segment stage's own lag, apart from ingest and identity resolution before it.
 * No listener: nothing is computed.
 */

export interface DrainBatchReport {
  workspaceId: string;
  /** Profiles taken from the queue (their data changed). */
  queued: number;
  /** Due re-checks evaluated. */
  rechecks: number;
  /** Per queued profile: commit time − queued_at, ms. */
  queueLagMs: number[];
  /** Wall time of the batch's transaction, ms. */
  batchMs: number;
  /** Queued profiles changed again while they waited (queue row version above 0: one evaluation for several changes). */
  changedWhileWaiting?: number;
  /** Queued profiles changed again while the batch evaluated them: left queued, evaluated again by a later batch. */
  changedWhileEvaluated?: number;
  /** Wall time by step of the batch (stage name → ms, summed when a step runs more than once). */
  stepsMs?: Record<string, number>;
}

/**
 * Times the steps of one drain batch, one after another: `lap(step)` charges the time since the
 * previous lap (or the start) to `step`. A drain with no listener gets `noSteps`, which does nothing.
 */
export interface StepClock {
  lap(step: string): void;
  /** Charges `ms` to `step` without moving the lap (for reads that overlap others). */
  add(step: string, ms: number): void;
  readonly stepsMs: Record<string, number> | undefined;
}

export const noSteps: StepClock = { lap: () => undefined, add: () => undefined, stepsMs: undefined };

export function startStepClock(): StepClock {
  const stepsMs: Record<string, number> = {};
  let last = performance.now();
  return {
    lap(step) {
      const now = performance.now();
      stepsMs[step] = (stepsMs[step] ?? 0) + (now - last);
      last = now;
    },
    add(step, ms) {
      stepsMs[step] = (stepsMs[step] ?? 0) + ms;
    },
    stepsMs,
  };
}

type Listener = (report: DrainBatchReport) => void;
const listeners = new Set<Listener>();

/** Calls `listener` after every committed drain batch; returns the function that stops it. */
export function onDrainBatch(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function hasDrainListeners(): boolean {
  return listeners.size > 0;
}

export function reportDrainBatch(report: DrainBatchReport): void {
  for (const listener of listeners) {
    try {
      listener(report);
    } catch {
      // A listener's failure is its own.
    }
  }
}
