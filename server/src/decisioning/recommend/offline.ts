import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { ALGORITHMS, type Algorithm } from '../schemas.ts';
import { historiesOf, recommend, trainModel, type CatalogueItem } from './algorithms.ts';
import { evaluateTopK, splitByUserTime, type Interaction, type Scores } from './metrics.ts';

/**
 * The MovieLens "latest-small" data set as implicit feedback: ratings ≥ minRating are positives
 * (weight 1), movies are items with their genres as attributes.
 */
export function loadMovieLens(directory: string, minRating = 4): { interactions: Interaction[]; catalogue: CatalogueItem[] } {
  const ratings = parse(fs.readFileSync(path.join(directory, 'ratings.csv')), { columns: true }) as Array<Record<string, string>>;
  const movies = parse(fs.readFileSync(path.join(directory, 'movies.csv')), { columns: true }) as Array<Record<string, string>>;
  const interactions = ratings
    .filter((row) => Number(row.rating) >= minRating)
    .map((row) => ({ user: row.userId!, item: row.movieId!, at: Number(row.timestamp) * 1000, weight: 1 }));
  const catalogue = movies.map((row) => ({
    id: row.movieId!,
    name: row.title ?? null,
    category: null,
    attributes: { genre: (row.genres ?? '').split('|').filter((g) => g && g !== '(no genres listed)') },
    inStock: true,
  }));
  return { interactions, catalogue };
}

export interface OfflineResult {
  algorithm: Algorithm;
  scores: Scores;
  trainMs: number;
}

/**
 * Each algorithm trained on the per-user time-based split and scored at k on the held-out
 * positives, with no fallbacks mixed in (each list is the algorithm alone, so the comparison is
 * fair); popularity is the baseline.
 */
export function evaluateOffline(
  interactions: readonly Interaction[],
  catalogue: readonly CatalogueItem[],
  options: { k?: number; trainShare?: number; algorithms?: readonly Algorithm[] } = {},
): OfflineResult[] {
  const k = options.k ?? 10;
  const { train, test } = splitByUserTime(interactions, options.trainShare ?? 0.8);
  const started = performance.now();
  const now = train.reduce((latest, i) => Math.max(latest, i.at), 0);
  const model = trainModel(train, catalogue, { now, halfLifeDays: 365 });
  const trainMs = performance.now() - started;
  const histories = historiesOf(train);
  return (options.algorithms ?? ALGORITHMS).map((algorithm) => ({
    algorithm,
    trainMs,
    scores: evaluateTopK(
      test,
      (user) => {
        const history = histories.get(user) ?? new Map<string, number>();
        return recommend(model, { algorithm, count: k, history, user, allow: () => true, fallback: false }).items.map(([item]) => item);
      },
      k,
    ),
  }));
}
