/*
 * Offline evaluation of top-K recommendation lists against held-out positives, pure.
 * Binary relevance: an item is relevant when it is among the user's held-out positives.
 */

export function precisionAtK(recommended: readonly string[], relevant: ReadonlySet<string>, k: number): number {
  let hits = 0;
  for (const item of recommended.slice(0, k)) if (relevant.has(item)) hits++;
  return hits / k;
}

export function recallAtK(recommended: readonly string[], relevant: ReadonlySet<string>, k: number): number {
  if (relevant.size === 0) return 0;
  let hits = 0;
  for (const item of recommended.slice(0, k)) if (relevant.has(item)) hits++;
  return hits / relevant.size;
}

/** DCG with gain 1 / log2(rank + 1) for ranks 1..k, over the ideal DCG of min(|relevant|, k) hits. */
export function ndcgAtK(recommended: readonly string[], relevant: ReadonlySet<string>, k: number): number {
  if (relevant.size === 0) return 0;
  let dcg = 0;
  recommended.slice(0, k).forEach((item, index) => {
    if (relevant.has(item)) dcg += 1 / Math.log2(index + 2);
  });
  let ideal = 0;
  for (let index = 0; index < Math.min(relevant.size, k); index++) ideal += 1 / Math.log2(index + 2);
  return dcg / ideal;
}

export interface Interaction {
  user: string;
  item: string;
  /** Milliseconds since the epoch. */
  at: number;
  /** Implicit strength (a view 1, a purchase more); MovieLens positives are 1. */
  weight: number;
}

/**
 * Per user, the earliest `trainShare` of their interactions (by time, ties by item) train and the
 * rest test: the model never sees a user's future. Users with fewer than 2 interactions only train.
 */
export function splitByUserTime(interactions: readonly Interaction[], trainShare = 0.8): { train: Interaction[]; test: Map<string, Set<string>> } {
  const byUser = new Map<string, Interaction[]>();
  for (const interaction of interactions) {
    const list = byUser.get(interaction.user) ?? [];
    list.push(interaction);
    byUser.set(interaction.user, list);
  }
  const train: Interaction[] = [];
  const test = new Map<string, Set<string>>();
  for (const [user, list] of byUser) {
    list.sort((a, b) => a.at - b.at || (a.item < b.item ? -1 : a.item > b.item ? 1 : 0));
    const cut = list.length < 2 ? list.length : Math.max(1, Math.min(list.length - 1, Math.round(list.length * trainShare)));
    train.push(...list.slice(0, cut));
    const held = new Set(list.slice(cut).map((i) => i.item));
    // An item seen in training is not a discovery; the split keeps only new items as targets.
    for (const i of list.slice(0, cut)) held.delete(i.item);
    if (held.size > 0) test.set(user, held);
  }
  return { train, test };
}

export interface Scores {
  precision: number;
  recall: number;
  ndcg: number;
  users: number;
}

/** Mean precision, recall and NDCG at k over the users with held-out positives. */
export function evaluateTopK(test: ReadonlyMap<string, ReadonlySet<string>>, recommend: (user: string) => readonly string[], k: number): Scores {
  let precision = 0;
  let recall = 0;
  let ndcg = 0;
  for (const [user, relevant] of test) {
    const list = recommend(user);
    precision += precisionAtK(list, relevant, k);
    recall += recallAtK(list, relevant, k);
    ndcg += ndcgAtK(list, relevant, k);
  }
  const users = test.size;
  return users === 0 ? { precision: 0, recall: 0, ndcg: 0, users } : { precision: precision / users, recall: recall / users, ndcg: ndcg / users, users };
}
