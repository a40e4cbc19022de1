/*
 * The statistics of analytics answers, pure: rates, the time-to-convert histogram bounds and, for
 * experiments, the two-proportion test with confidence intervals, a group-sequential boundary
 * against peeking, and the Bayesian chance to beat.
 */

/** `part / whole`, 0 when there is no whole. */
export function conversionRate(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}

/** Upper bounds (seconds, exclusive) of the time-to-convert histogram; null is the open last bucket. */
export const TIME_TO_CONVERT_BUCKETS: ReadonlyArray<number | null> = [60, 300, 900, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400, null];
