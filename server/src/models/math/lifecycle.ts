/*
 * Lifecycle stage from a customer's activity history (the model's activity event, by default the
 * purchase event): new, active, at risk, churned, reactivated. Thresholds are the model's config.
 */

export const LIFECYCLE_STAGES = ['new', 'active', 'at_risk', 'churned', 'reactivated'] as const;
export type LifecycleStage = (typeof LIFECYCLE_STAGES)[number];

export interface LifecycleThresholds {
  /** A customer whose first activity is at most this many days old is new. */
  newDays: number;
  /** No activity for more than this many days: at risk. */
  atRiskDays: number;
  /** No activity for more than this many days: churned (> atRiskDays). */
  churnedDays: number;
  /** A customer who came back after a churn-length gap stays `reactivated` this many days. */
  reactivatedDays: number;
}

export const DEFAULT_LIFECYCLE_THRESHOLDS: LifecycleThresholds = { newDays: 30, atRiskDays: 60, churnedDays: 180, reactivatedDays: 30 };

export interface ActivitySummary {
  firstAt: number;
  lastAt: number;
  /** The activity that ended the latest gap longer than churnedDays (a return), or null. */
  lastReturnAt: number | null;
}

const DAY = 86_400_000;

/**
 * The summary of activity times (ms, any order) under the given churn gap — what the database
 * query computes set-wise (store), kept here as the reference the tests compare it with.
 */
export function summarizeActivity(times: readonly number[], churnedDays: number): ActivitySummary | null {
  if (times.length === 0) return null;
  const sorted = [...times].sort((a, b) => a - b);
  let lastReturnAt: number | null = null;
  for (let i = 1; i < sorted.length; i++) if (sorted[i]! - sorted[i - 1]! > churnedDays * DAY) lastReturnAt = sorted[i]!;
  return { firstAt: sorted[0]!, lastAt: sorted.at(-1)!, lastReturnAt };
}

/** The stage at `now` (ms). Churned and at-risk depend on the last activity; new on the first; reactivated on the last return. */
export function lifecycleStage(activity: ActivitySummary, now: number, t: LifecycleThresholds): LifecycleStage {
  const idle = (now - activity.lastAt) / DAY;
  if (idle > t.churnedDays) return 'churned';
  if (idle > t.atRiskDays) return 'at_risk';
  if ((now - activity.firstAt) / DAY <= t.newDays) return 'new';
  if (activity.lastReturnAt !== null && (now - activity.lastReturnAt) / DAY <= t.reactivatedDays) return 'reactivated';
  return 'active';
}

export function checkThresholds(t: LifecycleThresholds): string | null {
  if (!(t.newDays > 0 && t.atRiskDays > 0 && t.churnedDays > 0 && t.reactivatedDays > 0)) return 'every threshold must be a positive number of days';
  if (t.churnedDays <= t.atRiskDays) return 'churnedDays must be greater than atRiskDays';
  return null;
}
