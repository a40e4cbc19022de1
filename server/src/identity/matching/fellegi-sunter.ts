/**
 * Fellegi–Sunter record linkage with parameters learned by expectation–maximisation: no labelled
 * pairs needed. Each pair is a vector of agreement levels (−1 = missing); the model says, per field
 * and level, how likely that level is among matches (m) and non-matches (u), and what share of the
 * candidate pairs match (λ). Fields are taken as independent given the match status, as is usual.
 */
export interface FellegiSunterModel {
  lambda: number;
  /** m[field][level] = P(level | match). */
  m: number[][];
  /** u[field][level] = P(level | non-match). */
  u: number[][];
  iterations: number;
  converged: boolean;
}

export interface EmOptions {
  maxIterations?: number;
  tolerance?: number;
  initialLambda?: number;
}

/** One distinct comparison vector and how many pairs have it. */
export interface Pattern {
  vector: number[];
  count: number;
}

// Keeps a level never seen among matches (or non-matches) from making a weight infinite.
const FLOOR = 1e-6;

/** Identical vectors are counted once: a few hundred patterns instead of hundreds of thousands of pairs. */
export function countPatterns(vectors: Iterable<number[]>): Pattern[] {
  const patterns = new Map<string, Pattern>();
  for (const vector of vectors) {
    const key = vector.join(',');
    const pattern = patterns.get(key);
    if (pattern) pattern.count++;
    else patterns.set(key, { vector, count: 1 });
  }
  return [...patterns.values()];
}

function normalise(row: number[]): number[] {
  const floored = row.map((value) => Math.max(value, FLOOR));
  const total = floored.reduce((sum, value) => sum + value, 0);
  return floored.map((value) => value / total);
}

/**
 * Starting point: matches mostly agree exactly; non-matches are distributed as all candidate pairs
 * are (nearly all of them are non-matches). EM then moves both to what the data says.
 */
function initialModel(levels: readonly number[], patterns: Pattern[], lambda: number): FellegiSunterModel {
  const m = levels.map((count) => normalise(Array.from({ length: count }, (_, level) => (level === count - 1 ? 0.8 : 0.2 / (count - 1)))));
  const u = levels.map((count, field) => {
    const frequencies = new Array<number>(count).fill(0);
    for (const { vector, count: times } of patterns) {
      const level = vector[field]!;
      if (level >= 0) frequencies[level]! += times;
    }
    return normalise(frequencies);
  });
  return { lambda, m, u, iterations: 0, converged: false };
}

/** P(match | vector) under the model; missing fields count for neither side. */
export function matchProbability(model: FellegiSunterModel, vector: readonly number[]): number {
  let logMatch = Math.log(model.lambda);
  let logNonMatch = Math.log(1 - model.lambda);
  vector.forEach((level, field) => {
    if (level < 0) return;
    logMatch += Math.log(model.m[field]![level]!);
    logNonMatch += Math.log(model.u[field]![level]!);
  });
  return 1 / (1 + Math.exp(logNonMatch - logMatch));
}

/** The match weight log2(m/u) summed over fields: the evidence of the pair, independent of λ. */
export function matchWeight(model: FellegiSunterModel, vector: readonly number[]): number {
  let weight = 0;
  vector.forEach((level, field) => {
    if (level >= 0) weight += Math.log2(model.m[field]![level]! / model.u[field]![level]!);
  });
  return weight;
}

export function trainFellegiSunter(levels: readonly number[], patterns: Pattern[], options: EmOptions = {}): FellegiSunterModel {
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-7;
  let model = initialModel(levels, patterns, options.initialLambda ?? 0.1);
  const total = patterns.reduce((sum, pattern) => sum + pattern.count, 0);
  if (total === 0) return { ...model, converged: true };

  for (let iteration = 1; iteration <= maxIterations; iteration++) {
    const mCounts = levels.map((count) => new Array<number>(count).fill(0));
    const uCounts = levels.map((count) => new Array<number>(count).fill(0));
    let matches = 0;
    for (const { vector, count } of patterns) {
      const g = matchProbability(model, vector);
      matches += g * count;
      vector.forEach((level, field) => {
        if (level < 0) return;
        mCounts[field]![level]! += g * count;
        uCounts[field]![level]! += (1 - g) * count;
      });
    }
    const next: FellegiSunterModel = {
      lambda: Math.min(Math.max(matches / total, FLOOR), 1 - FLOOR),
      m: mCounts.map(normalise),
      u: uCounts.map(normalise),
      iterations: iteration,
      converged: false,
    };
    const change = Math.max(
      Math.abs(next.lambda - model.lambda),
      ...next.m.flatMap((row, field) => row.map((value, level) => Math.abs(value - model.m[field]![level]!))),
      ...next.u.flatMap((row, field) => row.map((value, level) => Math.abs(value - model.u[field]![level]!))),
    );
    model = next;
    if (change < tolerance) return { ...model, converged: true };
  }
  return model;
}

/**
 * The share of matches among `patterns` for a trained model's m and u: the prior to score a
 * population other than the one the model was trained on.
 */
export function estimateLambda(model: FellegiSunterModel, patterns: Pattern[], options: EmOptions = {}): number {
  const total = patterns.reduce((sum, pattern) => sum + pattern.count, 0);
  if (total === 0) return model.lambda;
  let lambda = model.lambda;
  for (let iteration = 0; iteration < (options.maxIterations ?? 500); iteration++) {
    const current = { ...model, lambda };
    const matches = patterns.reduce((sum, { vector, count }) => sum + matchProbability(current, vector) * count, 0);
    const next = Math.min(Math.max(matches / total, FLOOR), 1 - FLOOR);
    const change = Math.abs(next - lambda);
    lambda = next;
    if (change < (options.tolerance ?? 1e-7)) break;
  }
  return lambda;
}

/** `count` distinct-record index pairs drawn uniformly (with replacement), deterministic for a seed. */
export function randomPairs(recordCount: number, count: number, seed = 1): Array<[number, number]> {
  if (recordCount < 2) return [];
  const random = mulberry32(seed);
  const pairs: Array<[number, number]> = [];
  for (let drawn = 0; drawn < count; drawn++) {
    const a = Math.floor(random() * recordCount);
    let b = Math.floor(random() * (recordCount - 1));
    if (b >= a) b++;
    pairs.push(a < b ? [a, b] : [b, a]);
  }
  return pairs;
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
