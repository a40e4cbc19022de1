/*
 * How good a score is: ranking (AUC) and calibration (predicted vs observed rates by bin, Brier
 * score, log loss). Pure.
 */

/**
 * Area under the ROC curve as the Mann–Whitney statistic: the probability that a random positive
 * scores above a random negative, ties counting half. O(n log n) through average ranks. NaN when
 * one class is absent.
 */
export function auc(scores: readonly number[], labels: readonly number[]): number {
  const order = scores.map((_, i) => i).sort((i, j) => scores[i]! - scores[j]!);
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const averageRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) {
      if (labels[order[k]!] === 1) {
        positives++;
        rankSum += averageRank;
      }
    }
    start = end + 1;
  }
  const negatives = order.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

export interface CalibrationBin {
  /** Mean predicted probability in the bin. */
  predicted: number;
  /** Observed share of positives in the bin. */
  observed: number;
  count: number;
}

/** Equal-count bins by predicted probability (deciles by default); empty bins are left out. */
export function calibrationBins(scores: readonly number[], labels: readonly number[], bins = 10): CalibrationBin[] {
  const order = scores.map((_, i) => i).sort((i, j) => scores[i]! - scores[j]!);
  const result: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const from = Math.floor((b * order.length) / bins);
    const to = Math.floor(((b + 1) * order.length) / bins);
    if (to <= from) continue;
    let predicted = 0;
    let observed = 0;
    for (let k = from; k < to; k++) {
      predicted += scores[order[k]!]!;
      observed += labels[order[k]!]!;
    }
    result.push({ predicted: predicted / (to - from), observed: observed / (to - from), count: to - from });
  }
  return result;
}

export function brierScore(scores: readonly number[], labels: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += (scores[i]! - labels[i]!) ** 2;
  return scores.length ? sum / scores.length : NaN;
}

export function logLoss(scores: readonly number[], labels: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = Math.min(Math.max(scores[i]!, 1e-15), 1 - 1e-15);
    sum -= labels[i]! === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return scores.length ? sum / scores.length : NaN;
}
