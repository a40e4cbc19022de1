import { candidatePairs, DEFAULT_BLOCKING_KEYS, type BlockingKey, type BlockingResult } from './blocking.ts';
import { comparisonVector, DEFAULT_COMPARATORS, type FieldComparator } from './compare.ts';
import { countPatterns, estimateLambda, matchProbability, matchWeight, randomPairs, trainFellegiSunter, type EmOptions, type FellegiSunterModel } from './fellegi-sunter.ts';
import { normalizePerson, type PersonInput, type PersonNormalizeOptions } from './person.ts';

export interface MatchThresholds {
  /** Match probability at or above which a pair is merged without review. */
  autoMerge: number;
  /** Match probability at or above which (and below autoMerge) a pair waits for a person to decide. */
  review: number;
}

export const DEFAULT_THRESHOLDS: MatchThresholds = { autoMerge: 0.95, review: 0.5 };

export interface MatchOptions extends PersonNormalizeOptions {
  thresholds?: MatchThresholds;
  blockingKeys?: readonly BlockingKey[];
  comparators?: readonly FieldComparator[];
  maxBlockSize?: number;
  em?: EmOptions;
  /** Random pairs added to the EM training population (default: twice the candidate pairs, at least 10,000). */
  randomPairs?: number;
}

export interface MatchCandidate {
  a: string;
  b: string;
  probability: number;
  /** log2 likelihood ratio: the pair's evidence, for explaining a decision. */
  weight: number;
  decision: 'auto_merge' | 'review';
  /** Agreement level per compared field (null when either record lacks it), for the review screen. */
  levels: Record<string, number | null>;
}

export interface MatchResult {
  candidates: MatchCandidate[];
  model: FellegiSunterModel;
  comparedPairs: number;
  skippedBlocks: BlockingResult['skippedBlocks'];
}

/**
 * Finds records that describe the same person without sharing an identifier: normalise, block on
 * several keys, compare field by field, learn Fellegi–Sunter weights by EM on these very pairs,
 * and keep the pairs at or above the review threshold.
 */
export function findMatches(inputs: readonly PersonInput[], options: MatchOptions = {}): MatchResult {
  const thresholds = options.thresholds ?? DEFAULT_THRESHOLDS;
  if (!(thresholds.review >= 0 && thresholds.review <= thresholds.autoMerge && thresholds.autoMerge <= 1)) {
    throw new RangeError('thresholds must satisfy 0 ≤ review ≤ autoMerge ≤ 1');
  }
  const ids = new Set(inputs.map((input) => input.id));
  if (ids.size !== inputs.length) throw new RangeError('record ids must be unique');
  const comparators = options.comparators ?? DEFAULT_COMPARATORS;
  const records = inputs.map((input) => normalizePerson(input, options));
  const { pairs, skippedBlocks } = candidatePairs(records, options.blockingKeys ?? DEFAULT_BLOCKING_KEYS, options.maxBlockSize);

  const vectors = pairs.map(([a, b]) => comparisonVector(records[a]!, records[b]!, comparators));
  const levels = comparators.map((comparator) => comparator.levels);
  // Good blocking yields mostly matches; trained on them alone, EM may take some kind of match
  // (address lines swapped, say) for the non-match class. Random pairs, nearly all non-matches,
  // anchor that class; the prior is then re-estimated on the candidate pairs that are scored.
  const sampled = randomPairs(records.length, options.randomPairs ?? Math.max(10_000, pairs.length * 2)).map(([a, b]) =>
    comparisonVector(records[a]!, records[b]!, comparators),
  );
  const candidatePatterns = countPatterns(vectors);
  const trained = trainFellegiSunter(levels, countPatterns([...vectors, ...sampled]), options.em);
  const model = { ...trained, lambda: estimateLambda(trained, candidatePatterns, options.em) };

  const candidates: MatchCandidate[] = [];
  pairs.forEach(([a, b], index) => {
    const vector = vectors[index]!;
    const probability = matchProbability(model, vector);
    if (probability < thresholds.review) return;
    candidates.push({
      a: records[a]!.id,
      b: records[b]!.id,
      probability,
      weight: matchWeight(model, vector),
      decision: probability >= thresholds.autoMerge ? 'auto_merge' : 'review',
      levels: Object.fromEntries(comparators.map((comparator, field) => [comparator.field, vector[field]! < 0 ? null : vector[field]!])),
    });
  });
  candidates.sort((x, y) => y.probability - x.probability || (x.a + x.b < y.a + y.b ? -1 : 1));
  return { candidates, model, comparedPairs: pairs.length, skippedBlocks };
}
