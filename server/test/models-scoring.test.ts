import { describe, expect, it } from 'vitest';
import { lifecycleStage, summarizeActivity, DEFAULT_LIFECYCLE_THRESHOLDS, checkThresholds } from '../src/models/math/lifecycle.ts';
import { fitLogistic, predictLogistic, sigmoid, solveSymmetric, standardize, standardizer } from '../src/models/math/logistic.ts';
import { auc, brierScore, calibrationBins, logLoss } from '../src/models/math/metrics.ts';
import { normal, seededRandom } from '../src/models/math/random.ts';
import { quintileScores, rfmGroup, scoreRfm, RFM_GROUPS } from '../src/models/math/rfm.ts';

/*
 * Scoring maths without a database: logistic regression against closed-form solutions and the
 * penalised optimality condition, AUC against brute-force pairwise counting, calibration, RFM
 * quintiles and groups, lifecycle stages — each against values worked out by hand.
 */

const logit = (p: number) => Math.log(p / (1 - p));

describe('logistic regression', () => {
  it('matches the closed form for one binary feature without a penalty', () => {
    // Group 0: 30 of 100 positive; group 1: 80 of 100. MLE: intercept = logit(0.3), slope = logit(0.8) − logit(0.3).
    const rows: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < 100; i++) {
      rows.push([0]);
      labels.push(i < 30 ? 1 : 0);
      rows.push([1]);
      labels.push(i < 80 ? 1 : 0);
    }
    const model = fitLogistic(rows, labels, { l2: 0 });
    expect(model.converged).toBe(true);
    expect(model.intercept).toBeCloseTo(logit(0.3), 8);
    expect(model.coefficients[0]).toBeCloseTo(logit(0.8) - logit(0.3), 8);
    expect(predictLogistic(model, [1])).toBeCloseTo(0.8, 8);
  });

  it('satisfies the penalised optimality condition Xᵀ(y − μ) = λβ, and the penalty shrinks', () => {
    const random = seededRandom(3);
    const rows = Array.from({ length: 300 }, () => [normal(random), normal(random), normal(random)]);
    const labels = rows.map((r) => (random() < sigmoid(0.5 + 2 * r[0]! - r[1]!) ? 1 : 0));
    const l2 = 5;
    const model = fitLogistic(rows, labels, { l2 });
    const gradient = [0, 0, 0, 0];
    rows.forEach((row, i) => {
      const residual = labels[i]! - predictLogistic(model, row);
      gradient[0]! += residual;
      row.forEach((v, j) => (gradient[j + 1]! += residual * v));
    });
    expect(gradient[0]).toBeCloseTo(0, 8);
    model.coefficients.forEach((beta, j) => expect(gradient[j + 1]).toBeCloseTo(l2 * beta, 8));
    const loose = fitLogistic(rows, labels, { l2: 0.01 });
    expect(Math.abs(model.coefficients[0]!)).toBeLessThan(Math.abs(loose.coefficients[0]!));
  });

  it('recovers simulated coefficients', () => {
    const random = seededRandom(8);
    const truth = { intercept: -1, coefficients: [1.5, -0.8, 0] };
    const rows = Array.from({ length: 20_000 }, () => [normal(random), normal(random), normal(random)]);
    const labels = rows.map((r) => (random() < predictLogistic(truth, r) ? 1 : 0));
    const model = fitLogistic(rows, labels, { l2: 0.1 });
    expect(model.intercept).toBeCloseTo(truth.intercept, 1);
    truth.coefficients.forEach((beta, j) => expect(Math.abs(model.coefficients[j]! - beta)).toBeLessThan(0.08));
  });

  it('solves a symmetric system and standardises columns', () => {
    const x = solveSymmetric(
      [
        [4, 2],
        [2, 3],
      ],
      [2, 1],
    );
    expect(x[0]).toBeCloseTo(0.5, 12);
    expect(x[1]).toBeCloseTo(0, 12);
    const s = standardizer([
      [1, 5],
      [3, 5],
    ]);
    expect(s.means).toEqual([2, 5]);
    expect(standardize(s, [3, 5])).toEqual([1, 0]);
  });
});

describe('AUC and calibration', () => {
  const bruteForce = (scores: number[], labels: number[]) => {
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < scores.length; i++) {
      for (let j = 0; j < scores.length; j++) {
        if (labels[i] !== 1 || labels[j] !== 0) continue;
        pairs++;
        wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    }
    return wins / pairs;
  };

  it('equals the pairwise count, ties included', () => {
    const random = seededRandom(5);
    for (let round = 0; round < 20; round++) {
      const n = 20 + Math.floor(random() * 200);
      // Rounded scores make ties common.
      const scores = Array.from({ length: n }, () => Math.round(random() * 10) / 10);
      const labels = scores.map((s) => (random() < 0.2 + 0.6 * s ? 1 : 0));
      if (!labels.includes(1) || !labels.includes(0)) continue;
      expect(auc(scores, labels)).toBeCloseTo(bruteForce(scores, labels), 12);
    }
    expect(auc([0.9, 0.8, 0.1], [1, 1, 0])).toBe(1);
    expect(auc([0.5, 0.5], [1, 0])).toBe(0.5);
    expect(auc([0.2, 0.3], [1, 1])).toBeNaN();
  });

  it('bins predictions by decile with their observed rates', () => {
    const scores = Array.from({ length: 100 }, (_, i) => i / 100);
    const labels = scores.map((_, i) => (i % 10 < 3 ? 1 : 0));
    const bins = calibrationBins(scores, labels, 10);
    expect(bins).toHaveLength(10);
    expect(bins[0]!.predicted).toBeCloseTo(0.045, 12);
    expect(bins[0]!.observed).toBeCloseTo(0.3, 12);
    expect(bins[9]!.predicted).toBeCloseTo(0.945, 12);
    expect(bins.reduce((s, b) => s + b.count, 0)).toBe(100);
    expect(brierScore([1, 0, 0.5], [1, 0, 1])).toBeCloseTo(0.25 / 3, 12);
    expect(logLoss([0.5, 0.5], [1, 0])).toBeCloseTo(Math.log(2), 12);
  });
});

describe('RFM', () => {
  it('scores quintiles with ties sharing a score', () => {
    expect(quintileScores([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toEqual([1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    // Eight customers bought once, two more often: the eight share F = 1.
    expect(quintileScores([1, 1, 1, 1, 1, 1, 1, 1, 2, 7])).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 5, 5]);
  });

  it('names every R×F cell, as in the standard grid', () => {
    expect(rfmGroup(5, 5)).toBe('champions');
    expect(rfmGroup(4, 4)).toBe('loyal');
    expect(rfmGroup(3, 5)).toBe('loyal');
    expect(rfmGroup(5, 2)).toBe('potential_loyalists');
    expect(rfmGroup(5, 1)).toBe('new_customers');
    expect(rfmGroup(4, 1)).toBe('promising');
    expect(rfmGroup(3, 3)).toBe('need_attention');
    expect(rfmGroup(3, 2)).toBe('about_to_sleep');
    expect(rfmGroup(2, 4)).toBe('at_risk');
    expect(rfmGroup(1, 5)).toBe('cant_lose_them');
    expect(rfmGroup(2, 2)).toBe('hibernating');
    const seen = new Set<string>();
    for (let r = 1; r <= 5; r++) for (let f = 1; f <= 5; f++) seen.add(rfmGroup(r, f));
    expect([...seen].sort()).toEqual([...RFM_GROUPS].sort());
  });

  it('scores recency so that recent is high', () => {
    // Five customers, each a quintile of its own.
    const scores = scoreRfm([
      { recencyDays: 1, frequency: 9, monetary: 900 },
      { recencyDays: 300, frequency: 1, monetary: 10 },
      { recencyDays: 30, frequency: 3, monetary: 100 },
      { recencyDays: 60, frequency: 2, monetary: 50 },
      { recencyDays: 10, frequency: 5, monetary: 300 },
    ]);
    expect(scores[0]).toMatchObject({ r: 5, f: 5, m: 5, group: 'champions' });
    expect(scores[1]).toMatchObject({ r: 1, f: 1, m: 1, group: 'hibernating' });
    expect(scores[2]).toMatchObject({ r: 3, f: 3, m: 3, group: 'need_attention' });
    expect(scores[3]).toMatchObject({ r: 2, f: 2, m: 2, group: 'hibernating' });
    expect(scores[4]).toMatchObject({ r: 4, f: 4, m: 4, group: 'loyal' });
  });
});

describe('lifecycle stages', () => {
  const DAY = 86_400_000;
  const now = Date.parse('2026-06-01T00:00:00Z');
  const ago = (days: number) => now - days * DAY;
  const t = DEFAULT_LIFECYCLE_THRESHOLDS;
  const stage = (...days: number[]) => lifecycleStage(summarizeActivity(days.map(ago), t.churnedDays)!, now, t);

  it('classifies by first, last and returning activity', () => {
    expect(stage(10)).toBe('new');
    expect(stage(100, 10)).toBe('active');
    expect(stage(100, 70)).toBe('at_risk');
    expect(stage(400, 200)).toBe('churned');
    // Bought 400 days ago, then nothing for 390 days, back 10 days ago.
    expect(stage(400, 10)).toBe('reactivated');
    // The return was 50 days ago: active again, no longer just reactivated.
    expect(stage(400, 50, 5)).toBe('active');
    expect(summarizeActivity([], 180)).toBeNull();
    expect(summarizeActivity([ago(400), ago(300), ago(10)], 180)).toEqual({ firstAt: ago(400), lastAt: ago(10), lastReturnAt: ago(10) });
  });

  it('refuses thresholds that contradict each other', () => {
    expect(checkThresholds(t)).toBeNull();
    expect(checkThresholds({ ...t, churnedDays: 30 })).toMatch(/churnedDays/);
    expect(checkThresholds({ ...t, newDays: 0 })).toMatch(/positive/);
  });
});
