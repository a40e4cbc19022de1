import crypto from 'node:crypto';
import { beta, type Random } from '../models/math/random.ts';

/*
 * The maths of a placement's policies, pure: stable hashing for sticky and holdout groups, Beta
 * posteriors and Thompson sampling with a floor of exploration, and categorical draws. No I/O,
 * no clock; randomness comes in as a function so tests replay it.
 */

/** A uniform number in [0, 1) fixed by (salt, id): the same profile always lands in the same place. */
export function stableUnit(salt: string, id: string): number {
  const digest = crypto.createHash('md5').update(`${salt}:${id}`).digest();
  // 48 bits are plenty and stay exact in a double.
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** What the bandit knows of one arm: trials (impressions) and successes (clicks or conversions). */
export interface ArmStats {
  key: string;
  trials: number;
  successes: number;
}

/** Beta(1 + successes, 1 + failures): a uniform prior updated by the arm's results. */
export function posterior(arm: ArmStats): { alpha: number; beta: number } {
  const successes = Math.max(0, Math.min(arm.successes, arm.trials));
  return { alpha: 1 + successes, beta: 1 + Math.max(0, arm.trials - successes) };
}

export const ALLOCATION_DRAWS = 2_000;

/**
 * The probability with which Thompson sampling shows each arm — P(its posterior draw is the
 * largest), estimated from `draws` joint draws — mixed with a uniform share `minExploration`,
 * so every arm keeps at least minExploration / n of the traffic however sure the posteriors are.
 * Drawing a content from this allocation is Thompson sampling in distribution, and the
 * allocation is the propensity logged with each decision (for off-policy evaluation).
 */
export function thompsonAllocation(arms: readonly ArmStats[], minExploration: number, random: Random, draws = ALLOCATION_DRAWS): Map<string, number> {
  if (arms.length === 0) return new Map();
  const wins = new Array<number>(arms.length).fill(0);
  const params = arms.map(posterior);
  for (let draw = 0; draw < draws; draw++) {
    let best = 0;
    let bestValue = -1;
    for (let i = 0; i < params.length; i++) {
      const value = beta(random, params[i]!.alpha, params[i]!.beta);
      if (value > bestValue) {
        bestValue = value;
        best = i;
      }
    }
    wins[best]!++;
  }
  const floor = Math.min(1, Math.max(0, minExploration)) / arms.length;
  const rest = 1 - floor * arms.length;
  return new Map(arms.map((arm, i) => [arm.key, floor + (rest * wins[i]!) / draws]));
}

/**
 * `draws` joint posterior draws of every arm (row-major: draw d, arm i at d * arms + i), drawn
 * once and shared by every subset of eligible arms (allocationFromDraws), so a placement whose
 * eligible contents differ per profile samples its posteriors once per refresh, not per subset.
 */
export function posteriorDraws(arms: readonly ArmStats[], random: Random, draws = ALLOCATION_DRAWS): Float64Array {
  const params = arms.map(posterior);
  const samples = new Float64Array(draws * arms.length);
  for (let d = 0; d < draws; d++) {
    for (let i = 0; i < arms.length; i++) samples[d * arms.length + i] = beta(random, params[i]!.alpha, params[i]!.beta);
  }
  return samples;
}

/** thompsonAllocation over the arms at `subset` (indexes into the drawn arms), from shared draws. */
export function allocationFromDraws(samples: Float64Array, armCount: number, subset: readonly number[], minExploration: number): number[] {
  const draws = samples.length / armCount;
  const wins = new Array<number>(subset.length).fill(0);
  for (let d = 0; d < draws; d++) {
    let best = 0;
    let bestValue = -1;
    for (let j = 0; j < subset.length; j++) {
      const value = samples[d * armCount + subset[j]!]!;
      if (value > bestValue) {
        bestValue = value;
        best = j;
      }
    }
    wins[best]!++;
  }
  const floor = Math.min(1, Math.max(0, minExploration)) / subset.length;
  const rest = 1 - floor * subset.length;
  return wins.map((w) => floor + (rest * w) / draws);
}

/** The key whose cumulative share first exceeds u (u in [0, 1)); weights need not sum to 1. */
export function pickWeighted<K>(weights: ReadonlyArray<readonly [K, number]>, u: number): { key: K; probability: number } {
  const total = weights.reduce((sum, [, weight]) => sum + Math.max(0, weight), 0);
  if (weights.length === 0) throw new RangeError('Nothing to pick from');
  if (total <= 0) {
    const index = Math.min(weights.length - 1, Math.floor(u * weights.length));
    return { key: weights[index]![0], probability: 1 / weights.length };
  }
  let cumulative = 0;
  for (const [key, weight] of weights) {
    const share = Math.max(0, weight) / total;
    cumulative += share;
    if (u < cumulative && share > 0) return { key, probability: share };
  }
  const last = [...weights].reverse().find(([, weight]) => weight > 0)!;
  return { key: last[0], probability: Math.max(0, last[1]) / total };
}
