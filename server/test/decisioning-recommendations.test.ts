import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { attributeTokens, recommend, trainModel, type CatalogueItem } from '../src/decisioning/recommend/algorithms.ts';
import { evaluateTopK, ndcgAtK, precisionAtK, recallAtK, splitByUserTime, type Interaction } from '../src/decisioning/recommend/metrics.ts';
import { evaluateOffline, loadMovieLens } from '../src/decisioning/recommend/offline.ts';

const MOVIELENS = path.resolve(import.meta.dirname, '../../../shared/data/movielens-latest-small');

/** Every ordering of a list (tiny lists only). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

/** NDCG the slow way: DCG of the list over the best DCG any ordering of all candidate items reaches. */
function bruteNdcg(recommended: string[], relevant: Set<string>, universe: string[], k: number): number {
  const dcg = (list: string[]) => list.slice(0, k).reduce((sum, item, rank) => sum + (relevant.has(item) ? 1 / Math.log2(rank + 2) : 0), 0);
  const best = Math.max(...permutations(universe).map(dcg));
  return best === 0 ? 0 : dcg(recommended) / best;
}

describe('top-K metrics', () => {
  it('agree with a brute-force computation on tiny cases', () => {
    const universe = ['a', 'b', 'c', 'd', 'e', 'f'];
    const cases: Array<[string[], string[], number]> = [
      [['a', 'b', 'c'], ['b'], 3],
      [['a', 'b', 'c', 'd'], ['a', 'd', 'f'], 3],
      [['f', 'e', 'd', 'c', 'b', 'a'], ['a', 'b'], 4],
      [['c', 'a'], ['a', 'b', 'c', 'd', 'e'], 2],
      [['a', 'b'], ['c'], 2],
    ];
    for (const [list, rel, k] of cases) {
      const relevant = new Set(rel);
      expect(ndcgAtK(list, relevant, k)).toBeCloseTo(bruteNdcg(list, relevant, universe, k), 12);
      const hits = list.slice(0, k).filter((item) => relevant.has(item)).length;
      expect(precisionAtK(list, relevant, k)).toBeCloseTo(hits / k, 12);
      expect(recallAtK(list, relevant, k)).toBeCloseTo(hits / relevant.size, 12);
    }
    // A hand-worked value: hits at ranks 1 and 3 of 2 relevant → (1 + 1/2) / (1 + 1/log2 3).
    expect(ndcgAtK(['x', 'y', 'z'], new Set(['x', 'z']), 3)).toBeCloseTo(1.5 / (1 + 1 / Math.log2(3)), 12);
    expect(evaluateTopK(new Map([['u', new Set(['x'])], ['v', new Set(['y'])]]), (user) => (user === 'u' ? ['x'] : ['z']), 1)).toEqual({
      precision: 0.5,
      recall: 0.5,
      ndcg: 0.5,
      users: 2,
    });
  });

  it('splits per user by time, 80/20, keeping only new items as targets', () => {
    const interactions: Interaction[] = [];
    for (let t = 0; t < 10; t++) interactions.push({ user: 'u', item: `i${t}`, at: 1000 - t, weight: 1 });
    interactions.push({ user: 'solo', item: 'i1', at: 5, weight: 1 });
    const { train, test } = splitByUserTime(interactions);
    // u's oldest 8 (at 991..998 → items i9..i2) train, the newest 2 (i1, i0) test.
    expect(train.filter((i) => i.user === 'u').map((i) => i.item).sort()).toEqual(['i2', 'i3', 'i4', 'i5', 'i6', 'i7', 'i8', 'i9']);
    expect([...test.get('u')!].sort()).toEqual(['i0', 'i1']);
    expect(test.has('solo')).toBe(false);
  });
});

describe('recommendation algorithms', () => {
  const catalogue: CatalogueItem[] = [
    { id: 'tent', name: 'Tent', category: 'outdoor', attributes: { brand: 'north' }, inStock: true },
    { id: 'stove', name: 'Stove', category: 'outdoor', attributes: { brand: 'north' }, inStock: true },
    { id: 'lamp', name: 'Lamp', category: 'outdoor', attributes: { brand: 'south' }, inStock: false },
    { id: 'novel', name: 'Novel', category: 'books', attributes: { genre: ['fiction'] }, inStock: true },
    { id: 'poems', name: 'Poems', category: 'books', attributes: { genre: ['fiction', 'poetry'] }, inStock: true },
    { id: 'new-tarp', name: 'Tarp', category: 'outdoor', attributes: { brand: 'north' }, inStock: true },
  ];
  const now = Date.parse('2026-03-01T00:00:00Z');
  const day = 86_400_000;
  const interactions: Interaction[] = [
    ...['u1', 'u2', 'u3', 'u4'].flatMap((user) => [
      { user, item: 'tent', at: now - 2 * day, weight: 1 },
      { user, item: 'stove', at: now - 2 * day, weight: 1 },
    ]),
    { user: 'u4', item: 'lamp', at: now - day, weight: 1 },
    // Old favourites: many, but long ago.
    ...['r1', 'r2', 'r3', 'r4', 'r5', 'r6'].map((user) => ({ user, item: 'novel', at: now - 300 * day, weight: 1 })),
    { user: 'r1', item: 'poems', at: now - 300 * day, weight: 1 },
  ];
  const model = trainModel(interactions, catalogue, { now, halfLifeDays: 30 });
  const all = () => true;

  it('item-kNN recommends what co-occurs with the history', () => {
    expect(model.neighbours.get('tent')![0]![0]).toBe('stove');
    expect(model.neighbours.get('tent')![0]![1]).toBeCloseTo(4 / Math.sqrt(4 * 4), 12);
    const result = recommend(model, { algorithm: 'item_knn', count: 1, history: new Map([['tent', 1]]), user: null, allow: all });
    expect(result).toEqual({ items: [['stove', 1]], algorithm: 'item_knn' });
  });

  it('popularity decays with time: recent tents beat long-ago novels', () => {
    expect(model.popular[0]![0]).toMatch(/tent|stove/);
    expect(model.popular.findIndex(([item]) => item === 'novel')).toBeGreaterThan(1);
    const fresh = trainModel(interactions, catalogue, { now, halfLifeDays: 10_000 });
    expect(fresh.popular[0]![0]).toBe('novel');
  });

  it('user-kNN recommends what similar profiles had', () => {
    const result = recommend(model, { algorithm: 'user_knn', count: 1, history: new Map([['tent', 1], ['stove', 1]]), user: 'u1', allow: all });
    expect(result.items[0]![0]).toBe('lamp');
  });

  it('cold start: a new item is reached by attributes, a new profile gets popular items; filters apply', () => {
    expect(attributeTokens(catalogue[4]!)).toEqual(['category=books', 'genre=fiction', 'genre=poetry']);
    // new-tarp has no interactions: only the content-based scorer can find it.
    const content = recommend(model, { algorithm: 'content', count: 2, history: new Map([['tent', 1]]), user: null, allow: all });
    expect(content.items.map(([item]) => item)).toContain('new-tarp');
    const inStock = new Set(catalogue.filter((i) => i.inStock).map((i) => i.id));
    const stranger = recommend(model, { algorithm: 'item_knn', count: 3, history: new Map(), user: null, allow: (item) => inStock.has(item) });
    expect(stranger.algorithm).toBe('popular');
    expect(stranger.items.map(([item]) => item)).not.toContain('lamp');
    expect(stranger.items).toHaveLength(3);
    const books = recommend(model, { algorithm: 'item_knn', count: 5, history: new Map([['tent', 1]]), user: null, allow: (item) => item === 'novel' || item === 'poems' });
    expect(books.items.map(([item]) => item).sort()).toEqual(['novel', 'poems']);
    // History items are never recommended back.
    expect(recommend(model, { algorithm: 'popular', count: 10, history: new Map([['tent', 1]]), user: null, allow: all }).items.map(([i]) => i)).not.toContain('tent');
  });
});

describe('offline evaluation on MovieLens (ratings ≥ 4, per-user time split 80/20)', () => {
  it('item-kNN beats the popularity baseline on NDCG@10', () => {
    const { interactions, catalogue } = loadMovieLens(MOVIELENS);
    expect(interactions.length).toBeGreaterThan(40_000);
    const results = evaluateOffline(interactions, catalogue, { k: 10, algorithms: ['item_knn', 'popular'] });
    const score = (algorithm: string) => results.find((r) => r.algorithm === algorithm)!.scores;
    expect(score('item_knn').users).toBeGreaterThan(500);
    expect(score('popular').ndcg).toBeGreaterThan(0);
    expect(score('item_knn').ndcg).toBeGreaterThan(score('popular').ndcg);
    expect(score('item_knn').precision).toBeGreaterThan(score('popular').precision);
  }, 300_000);
});
