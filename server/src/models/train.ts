import {
  bgNbdConditionalExpectedPurchases,
  bgNbdProbabilityAlive,
  fitBgNbd,
  type RfmSummary,
} from './math/bgnbd.ts';
import { customerLifetimeValue } from './math/clv.ts';
import { fitGammaGamma, gammaGammaConditionalSpend, gammaGammaPopulationSpend } from './math/gamma-gamma.ts';
import { lifecycleStage, type LifecycleThresholds } from './math/lifecycle.ts';
import { fitLogistic, predictLogistic, standardize, standardizer } from './math/logistic.ts';
import { auc, brierScore, calibrationBins, logLoss } from './math/metrics.ts';
import { scoreRfm } from './math/rfm.ts';
import type { ActivityRow, FeatureSet, PurchaseHistory } from './data.ts';
import type { ClvConfig } from './schemas.ts';

/*
 * Training and scoring per model kind, from the summaries data.ts loads to the values the run
 * writes and what it reports. Pure: the run (run.ts) does the reading and writing.
 */

const DAY = 86_400_000;
const WEEK = 7 * DAY;

export interface Trained {
  /** profile → trait suffix → value (the run prefixes the model key). */
  values: Map<string, Record<string, unknown>>;
  parameters: Record<string, unknown>;
  metrics: Record<string, unknown>;
  diagnostics: Record<string, unknown>;
}

/** A model cannot be trained on this data (too few customers, one class only): the run fails with this message. */
export class InsufficientData extends Error {}

const round = (value: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

function counts(values: Iterable<string>): Record<string, number> {
  const result: Record<string, number> = {};
  for (const v of values) result[v] = (result[v] ?? 0) + 1;
  return result;
}

// ---------------------------------------------------------------------------------------------

export function trainRfm(purchases: ReadonlyMap<string, PurchaseHistory>, now: number): Trained {
  const profiles = [...purchases.keys()];
  const inputs = profiles.map((id) => {
    const h = purchases.get(id)!;
    return { recencyDays: (now - h.days.at(-1)!) / DAY, frequency: h.days.length, monetary: h.revenue.reduce((s, v) => s + v, 0) };
  });
  const scores = scoreRfm(inputs);
  const values = new Map<string, Record<string, unknown>>();
  profiles.forEach((id, i) => {
    const s = scores[i]!;
    values.set(id, {
      group: s.group,
      score: `${s.r}${s.f}${s.m}`,
      r: s.r,
      f: s.f,
      m: s.m,
      frequency: inputs[i]!.frequency,
      monetary: round(inputs[i]!.monetary, 2),
      last_purchase_at: new Date(purchases.get(id)!.days.at(-1)!).toISOString(),
    });
  });
  // The quintile boundaries: the smallest value that earns each score.
  const boundaries = (key: 'frequency' | 'monetary' | 'r') => {
    const result: Record<string, number> = {};
    scores.forEach((s, i) => {
      const score = key === 'r' ? s.r : key === 'frequency' ? s.f : s.m;
      const value = key === 'r' ? -inputs[i]!.recencyDays : inputs[i]![key];
      result[score] = Math.min(result[score] ?? Infinity, value);
    });
    return result;
  };
  return {
    values,
    parameters: {
      frequencyFrom: boundaries('frequency'),
      monetaryFrom: boundaries('monetary'),
      recencyDaysUpTo: Object.fromEntries(Object.entries(boundaries('r')).map(([k, v]) => [k, round(-v, 2)])),
    },
    metrics: { customers: profiles.length, groups: counts(scores.map((s) => s.group)) },
    diagnostics: {},
  };
}

// ---------------------------------------------------------------------------------------------

export function trainLifecycle(activity: ReadonlyMap<string, ActivityRow>, now: number, thresholds: LifecycleThresholds): Trained {
  const values = new Map<string, Record<string, unknown>>();
  for (const [id, row] of activity) values.set(id, { stage: lifecycleStage(row, now, thresholds) });
  return {
    values,
    parameters: { ...thresholds },
    metrics: { customers: activity.size, stages: counts([...values.values()].map((v) => String(v.stage))) },
    diagnostics: {},
  };
}

// ---------------------------------------------------------------------------------------------

/** The BG/NBD summary of purchase days before `until` (weeks), or null without a purchase then. */
export function summarize(history: PurchaseHistory, until: number): { summary: RfmSummary; repeatRevenue: number[] } | null {
  const days = history.days.filter((d) => d < until);
  if (days.length === 0) return null;
  const first = days[0]!;
  return {
    summary: { x: days.length - 1, tx: (days.at(-1)! - first) / WEEK, T: (until - first) / WEEK },
    repeatRevenue: history.revenue.slice(1, days.length),
  };
}

export function trainClv(purchases: ReadonlyMap<string, PurchaseHistory>, now: number, config: ClvConfig): Trained {
  const profiles: string[] = [];
  const summaries: RfmSummary[] = [];
  const spends: { x: number; m: number }[] = [];
  const spendOf = new Map<string, { x: number; m: number }>();
  for (const [id, history] of purchases) {
    const s = summarize(history, now);
    if (!s) continue;
    profiles.push(id);
    summaries.push(s.summary);
    const positive = s.repeatRevenue.filter((v) => v > 0);
    if (positive.length > 0) {
      const spend = { x: positive.length, m: positive.reduce((a, b) => a + b, 0) / positive.length };
      spends.push(spend);
      spendOf.set(id, spend);
    }
  }
  if (profiles.length < 20) throw new InsufficientData(`CLV needs at least 20 customers with a purchase, found ${profiles.length}`);
  if (spends.length < 10) throw new InsufficientData(`CLV needs at least 10 customers with a repeat purchase of positive value, found ${spends.length}`);

  const holdout = config.holdoutDays > 0 ? clvHoldout(purchases, now, config.holdoutDays) : null;
  const bg = fitBgNbd(summaries);
  const gg = fitGammaGamma(spends);
  const populationSpend = gammaGammaPopulationSpend(gg.params);
  const firstSpends = [...purchases.values()].map((h) => h.revenue[0]!).filter((v) => v > 0);
  const fallbackSpend = Number.isFinite(populationSpend) ? populationSpend : firstSpends.reduce((a, b) => a + b, 0) / Math.max(firstSpends.length, 1);
  const horizonWeeks = config.horizonDays / 7;
  const values = new Map<string, Record<string, unknown>>();
  let totalClv = 0;
  profiles.forEach((id, i) => {
    const summary = summaries[i]!;
    const own = spendOf.get(id);
    const spend = own ? gammaGammaConditionalSpend(gg.params, own) : fallbackSpend;
    const clv = customerLifetimeValue(bg.params, summary, spend, horizonWeeks, config.annualDiscountRate);
    totalClv += clv;
    values.set(id, {
      value: round(clv, 2),
      p_alive: round(bgNbdProbabilityAlive(bg.params, summary), 3),
      expected_purchases: round(bgNbdConditionalExpectedPurchases(bg.params, summary, horizonWeeks), 2),
    });
  });
  const warnings = bg.params.a <= 1 ? ['BG/NBD a ≤ 1: expected purchases use a → 1⁺ and are an upper bound'] : [];
  return {
    values,
    parameters: { bgnbd: bg.params, gammaGamma: gg.params, timeUnit: 'week', populationSpend: Number.isFinite(populationSpend) ? populationSpend : null },
    metrics: {
      customers: profiles.length,
      repeatCustomers: spends.length,
      bgnbdLogLikelihood: bg.logLikelihood,
      bgnbdAic: 8 - 2 * bg.logLikelihood,
      bgnbdConverged: bg.converged,
      gammaGammaLogLikelihood: gg.logLikelihood,
      gammaGammaConverged: gg.converged,
      meanClv: totalClv / profiles.length,
      ...(holdout ? { holdout: holdout.summary } : {}),
      warnings,
    },
    diagnostics: holdout ? { holdoutWeekly: holdout.weekly, holdoutByFrequency: holdout.byFrequency, holdoutParameters: holdout.params } : {},
  };
}

/**
 * Fits on the purchases before now − holdoutDays and compares, week by week, the repeat purchases
 * the calibration customers were expected to make in the holdout with those they made.
 */
function clvHoldout(purchases: ReadonlyMap<string, PurchaseHistory>, now: number, holdoutDays: number) {
  const cut = now - holdoutDays * DAY;
  const customers: { summary: RfmSummary; later: number[] }[] = [];
  for (const history of purchases.values()) {
    const s = summarize(history, cut);
    if (s) customers.push({ summary: s.summary, later: history.days.filter((d) => d >= cut) });
  }
  if (customers.length < 20) return null;
  const fit = fitBgNbd(customers.map((c) => c.summary));
  const weeks = Math.ceil(holdoutDays / 7);
  const weekly: { week: number; expected: number; actual: number }[] = [];
  const previous = new Array<number>(customers.length).fill(0);
  for (let k = 1; k <= weeks; k++) {
    const until = Math.min(k * 7, holdoutDays) / 7;
    let expected = 0;
    let actual = 0;
    customers.forEach((c, i) => {
      const cumulative = bgNbdConditionalExpectedPurchases(fit.params, c.summary, until);
      expected += cumulative - previous[i]!;
      previous[i] = cumulative;
      actual += c.later.filter((d) => d >= cut + (k - 1) * WEEK && d < cut + until * WEEK).length;
    });
    weekly.push({ week: k, expected: round(expected, 3), actual });
  }
  // Mean holdout purchases by calibration repeat count (0 … 6, 7+): expected vs actual.
  const buckets = new Map<number, { customers: number; expected: number; actual: number }>();
  customers.forEach((c, i) => {
    const bucket = Math.min(c.summary.x, 7);
    const entry = buckets.get(bucket) ?? { customers: 0, expected: 0, actual: 0 };
    entry.customers++;
    entry.expected += previous[i]!;
    entry.actual += c.later.length;
    buckets.set(bucket, entry);
  });
  const byFrequency = [...buckets.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([x, e]) => ({ repeatPurchases: x === 7 ? '7+' : String(x), customers: e.customers, expected: round(e.expected / e.customers, 3), actual: round(e.actual / e.customers, 3) }));
  const totalExpected = weekly.reduce((s, w) => s + w.expected, 0);
  const totalActual = weekly.reduce((s, w) => s + w.actual, 0);
  return {
    params: fit.params,
    weekly,
    byFrequency,
    summary: {
      calibrationEnd: new Date(cut).toISOString(),
      customers: customers.length,
      expected: round(totalExpected, 2),
      actual: totalActual,
      relativeError: totalActual > 0 ? round((totalExpected - totalActual) / totalActual, 4) : null,
      weeklyMeanAbsoluteError: round(weekly.reduce((s, w) => s + Math.abs(w.expected - w.actual), 0) / weekly.length, 3),
    },
  };
}

// ---------------------------------------------------------------------------------------------

/** A stable 1-in-5 validation split by profile id (the same profile is always on the same side). */
export const isValidation = (profileId: string) => parseInt(profileId.replaceAll('-', '').slice(-6), 16) % 5 === 0;

export interface Classifier {
  names: string[];
  scaler: ReturnType<typeof standardizer>;
  model: ReturnType<typeof fitLogistic>;
  metrics: Record<string, unknown>;
  diagnostics: Record<string, unknown>;
  topFeatures: { feature: string; coefficient: number; oddsRatioPerSd: number }[];
}

/**
 * Fits a logistic regression on standardised features: first on the 4/5 training split, measured
 * on the held-out fifth (AUC, calibration by decile, Brier score, log loss), then on every row for
 * scoring. Top features are the final model's largest standardised coefficients.
 */
export function trainClassifier(features: FeatureSet, labels: readonly number[], l2: number): Classifier {
  const n = labels.length;
  const positives = labels.reduce((s, v) => s + v, 0);
  if (n < 20 || positives < 5 || n - positives < 5) {
    throw new InsufficientData(`need at least 20 profiles with 5 of each outcome, found ${n} with ${positives} positive`);
  }
  const train: number[] = [];
  const valid: number[] = [];
  features.profiles.forEach((id, i) => (isValidation(id) ? valid : train).push(i));
  let metrics: Record<string, unknown> = { profiles: n, positiveRate: positives / n };
  let diagnostics: Record<string, unknown> = {};
  const validPositives = valid.filter((i) => labels[i] === 1).length;
  if (valid.length >= 10 && validPositives > 0 && validPositives < valid.length) {
    const scaler = standardizer(train.map((i) => features.rows[i]!));
    const model = fitLogistic(
      train.map((i) => standardize(scaler, features.rows[i]!)),
      train.map((i) => labels[i]!),
      { l2 },
    );
    const scores = valid.map((i) => predictLogistic(model, standardize(scaler, features.rows[i]!)));
    const actual = valid.map((i) => labels[i]!);
    metrics = {
      ...metrics,
      validationProfiles: valid.length,
      auc: auc(scores, actual),
      brier: brierScore(scores, actual),
      logLoss: logLoss(scores, actual),
    };
    diagnostics = { calibration: calibrationBins(scores, actual, 10) };
  } else {
    metrics = { ...metrics, auc: null, note: 'too few validation profiles of each outcome to measure' };
  }
  const scaler = standardizer(features.rows);
  const model = fitLogistic(
    features.rows.map((row) => standardize(scaler, row)),
    labels,
    { l2 },
  );
  const topFeatures = model.coefficients
    .map((coefficient, j) => ({ feature: features.names[j]!, coefficient: round(coefficient, 4), oddsRatioPerSd: round(Math.exp(coefficient), 4) }))
    .sort((a, b) => Math.abs(b.coefficient) - Math.abs(a.coefficient))
    .slice(0, 10);
  return { names: features.names, scaler, model, metrics: { ...metrics, converged: model.converged }, diagnostics, topFeatures };
}

export function scoreWith(classifier: Classifier, features: FeatureSet): number[] {
  return features.rows.map((row) => predictLogistic(classifier.model, standardize(classifier.scaler, row)));
}

/** Deciles 1–10 by score among the scored (10: the highest tenth). */
export function deciles(scores: readonly number[]): number[] {
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  const result = new Array<number>(scores.length);
  order.forEach((index, rank) => (result[index] = Math.min(10, 1 + Math.floor((10 * rank) / scores.length))));
  return result;
}
