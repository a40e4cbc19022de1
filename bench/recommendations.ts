/**
 * Offline evaluation of the recommendation algorithms on MovieLens latest-small
 * (`../shared/data/movielens-latest-small/`): ratings ≥ 4 as implicit positives, a per-user
 * time-based 80/20 split, precision@10, recall@10 and NDCG@10 per algorithm against the
 * popularity baseline, computed by server/src/decisioning/recommend (the code decide serves).
 *
 * `node --import tsx bench/recommendations.ts [directory]`
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluateOffline, loadMovieLens } from '../server/src/decisioning/recommend/offline.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const directory = process.argv[2] ?? path.resolve(HERE, '../../shared/data/movielens-latest-small');
const started = performance.now();
const { interactions, catalogue } = loadMovieLens(directory);
const users = new Set(interactions.map((i) => i.user)).size;
console.log(`MovieLens: ${interactions.length.toLocaleString('en')} positives (rating ≥ 4) of ${users} users, ${catalogue.length.toLocaleString('en')} movies`);
const results = evaluateOffline(interactions, catalogue, { k: 10 });
const popular = results.find((r) => r.algorithm === 'popular')!.scores;
console.log(`| algorithm | precision@10 | recall@10 | NDCG@10 | NDCG vs popular |`);
console.log(`|---|---|---|---|---|`);
for (const { algorithm, scores } of results) {
  console.log(`| ${algorithm} | ${scores.precision.toFixed(4)} | ${scores.recall.toFixed(4)} | ${scores.ndcg.toFixed(4)} | ×${(scores.ndcg / popular.ndcg).toFixed(2)} |`);
}
console.log(`test users: ${popular.users}; model trained in ${Math.round(results[0]!.trainMs)} ms; total ${Math.round(performance.now() - started)} ms`);
