/*
 * RFM: recency, frequency, monetary per customer, scored 1–5 by quintile within the workspace and
 * named by the widely used R×F grid (R and F scores; M is reported as a score beside them).
 */

export interface RfmInput {
  /** Days since the last purchase. */
  recencyDays: number;
  /** Number of purchases. */
  frequency: number;
  /** Total revenue. */
  monetary: number;
}

export interface RfmScore {
  r: number;
  f: number;
  m: number;
  group: RfmGroup;
}

export const RFM_GROUPS = [
  'champions',
  'loyal',
  'potential_loyalists',
  'new_customers',
  'promising',
  'need_attention',
  'about_to_sleep',
  'at_risk',
  'cant_lose_them',
  'hibernating',
] as const;
export type RfmGroup = (typeof RFM_GROUPS)[number];

/**
 * Quintile scores 1–5 of each value among `values`: 1 + ⌊5 · (share of values strictly below)⌋,
 * so equal values share a score (a workspace where most customers bought once gives them all F=1,
 * not five arbitrary scores). Higher is better; pass negated values where lower is better.
 */
export function quintileScores(values: readonly number[]): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  return values.map((v) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    return Math.min(5, 1 + Math.floor((5 * lo) / sorted.length));
  });
}

/** The named group of an (R, F) score pair. */
export function rfmGroup(r: number, f: number): RfmGroup {
  if (r >= 5 && f >= 4) return 'champions';
  if (r >= 3 && f >= 4) return 'loyal';
  if (r >= 4 && f >= 2) return 'potential_loyalists';
  if (r >= 5) return 'new_customers';
  if (r === 4) return 'promising';
  if (r === 3 && f === 3) return 'need_attention';
  if (r === 3) return 'about_to_sleep';
  if (f >= 5) return 'cant_lose_them';
  if (f >= 3) return 'at_risk';
  return 'hibernating';
}

export function scoreRfm(customers: readonly RfmInput[]): RfmScore[] {
  const r = quintileScores(customers.map((c) => -c.recencyDays));
  const f = quintileScores(customers.map((c) => c.frequency));
  const m = quintileScores(customers.map((c) => c.monetary));
  return customers.map((_, i) => ({ r: r[i]!, f: f[i]!, m: m[i]!, group: rfmGroup(r[i]!, f[i]!) }));
}
