import type { Algorithm } from '../schemas.ts';
import type { Interaction } from './metrics.ts';

/*
 * Recommendation algorithms on implicit feedback, pure: a model is trained from interactions
 * (profile, item, time, weight) and the catalogue's attributes, then answers top-N lists for a
 * history. Items and users are indexed by integers inside training for speed; the model keeps
 * string ids so it can be stored as JSON and served by another process.
 */

export interface CatalogueItem {
  id: string;
  name: string | null;
  category: string | null;
  attributes: Record<string, unknown>;
  inStock: boolean;
}

export interface TrainOptions {
  /** The training clock: popularity decays from here. */
  now: number;
  /** Popularity halves every this many days. */
  halfLifeDays?: number;
  /** Neighbours kept per item. */
  neighbours?: number;
  /**
   * A user's most recent interactions used for co-occurrence: one heavy user with n items adds
   * n² pairs, and long-ago tastes say little about what goes together now.
   */
  maxHistory?: number;
}

export interface RecommendationModel {
  trainedAt: number;
  /** item → [similar item, cosine of their co-occurrence] best first. */
  neighbours: Map<string, Array<[string, number]>>;
  /** Items by popularity with time decay, best first. */
  popular: Array<[string, number]>;
  /** Training histories (user → item → weight), for user-based neighbours. */
  histories: Map<string, Map<string, number>>;
  /** item → users who had it: the inverted index user_knn walks. */
  usersOfItem: Map<string, string[]>;
  /** item → attribute tokens with their TF-IDF weights (content-based). */
  itemTokens: Map<string, Map<string, number>>;
  /** token → items carrying it. */
  itemsOfToken: Map<string, string[]>;
}

const DAY_MS = 86_400_000;

/** Attribute tokens of an item: its category and each key=value of its attributes (arrays per element). */
export function attributeTokens(item: Pick<CatalogueItem, 'category' | 'attributes'>): string[] {
  const tokens = new Set<string>();
  if (item.category) tokens.add(`category=${item.category.toLowerCase()}`);
  for (const [key, value] of Object.entries(item.attributes)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v === null || v === undefined || typeof v === 'object') continue;
      tokens.add(`${key}=${String(v).toLowerCase()}`);
    }
  }
  return [...tokens];
}

export function historiesOf(interactions: readonly Interaction[]): Map<string, Map<string, number>> {
  const histories = new Map<string, Map<string, number>>();
  for (const { user, item, weight } of interactions) {
    const history = histories.get(user) ?? new Map<string, number>();
    history.set(item, (history.get(item) ?? 0) + weight);
    histories.set(user, history);
  }
  return histories;
}

export function trainModel(interactions: readonly Interaction[], catalogue: readonly CatalogueItem[], options: TrainOptions): RecommendationModel {
  const halfLife = (options.halfLifeDays ?? 30) * DAY_MS;
  const keep = options.neighbours ?? 50;
  const maxHistory = options.maxHistory ?? 300;

  // Integer indexes.
  const itemIndex = new Map<string, number>();
  const itemIds: string[] = [];
  const indexOf = (id: string) => {
    let index = itemIndex.get(id);
    if (index === undefined) {
      index = itemIds.length;
      itemIndex.set(id, index);
      itemIds.push(id);
    }
    return index;
  };
  const byUser = new Map<string, Interaction[]>();
  const popularity = new Map<string, number>();
  for (const interaction of interactions) {
    indexOf(interaction.item);
    const list = byUser.get(interaction.user) ?? [];
    list.push(interaction);
    byUser.set(interaction.user, list);
    const age = Math.max(0, options.now - interaction.at);
    popularity.set(interaction.item, (popularity.get(interaction.item) ?? 0) + interaction.weight * Math.pow(0.5, age / halfLife));
  }

  // Binary user × item incidence, most recent maxHistory items per user.
  const userItems: Int32Array[] = [];
  const itemUsers: number[][] = itemIds.map(() => []);
  for (const list of byUser.values()) {
    const recent = [...list].sort((a, b) => b.at - a.at);
    const distinct = [...new Set(recent.map((i) => itemIndex.get(i.item)!))].slice(0, maxHistory);
    const userIndex = userItems.length;
    userItems.push(Int32Array.from(distinct));
    for (const item of distinct) itemUsers[item]!.push(userIndex);
  }
  const counts = new Float64Array(itemIds.length);
  const touched: number[] = [];
  const neighbours = new Map<string, Array<[string, number]>>();
  for (let i = 0; i < itemIds.length; i++) {
    touched.length = 0;
    for (const user of itemUsers[i]!) {
      for (const j of userItems[user]!) {
        if (j === i) continue;
        if (counts[j] === 0) touched.push(j);
        counts[j]!++;
      }
    }
    const ni = itemUsers[i]!.length;
    const scored: Array<[number, number]> = touched.map((j) => [j, counts[j]! / Math.sqrt(ni * itemUsers[j]!.length)]);
    for (const j of touched) counts[j] = 0;
    scored.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    neighbours.set(itemIds[i]!, scored.slice(0, keep).map(([j, s]) => [itemIds[j]!, s]));
  }

  const popular = [...popularity].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return assembleModel({ trainedAt: options.now, neighbours, popular }, historiesOf(interactions), catalogue);
}

/** The trained parts that are stored (decision_models). */
export interface TrainedParts {
  trainedAt: number;
  neighbours: Map<string, Array<[string, number]>>;
  popular: Array<[string, number]>;
}

/** A servable model from the stored parts, the profiles' histories and the catalogue. */
export function assembleModel(parts: TrainedParts, histories: Map<string, Map<string, number>>, catalogue: readonly CatalogueItem[]): RecommendationModel {
  const { trainedAt, neighbours, popular } = parts;
  const usersOfItem = new Map<string, string[]>();
  for (const [user, history] of histories) {
    for (const item of history.keys()) {
      const users = usersOfItem.get(item) ?? [];
      users.push(user);
      usersOfItem.set(item, users);
    }
  }

  // TF-IDF over attribute tokens, each item's vector normalised to length 1.
  const rawTokens = new Map(catalogue.map((item) => [item.id, attributeTokens(item)]));
  const documentFrequency = new Map<string, number>();
  for (const tokens of rawTokens.values()) for (const token of tokens) documentFrequency.set(token, (documentFrequency.get(token) ?? 0) + 1);
  const itemTokens = new Map<string, Map<string, number>>();
  const itemsOfToken = new Map<string, string[]>();
  for (const [item, tokens] of rawTokens) {
    const weights = tokens.map((token) => [token, Math.log(1 + rawTokens.size / documentFrequency.get(token)!)] as const);
    const norm = Math.sqrt(weights.reduce((sum, [, w]) => sum + w * w, 0)) || 1;
    itemTokens.set(item, new Map(weights.map(([token, w]) => [token, w / norm])));
    for (const token of tokens) {
      const items = itemsOfToken.get(token) ?? [];
      items.push(item);
      itemsOfToken.set(token, items);
    }
  }

  return { trainedAt, neighbours, popular, histories, usersOfItem, itemTokens, itemsOfToken };
}

export interface RecommendRequest {
  algorithm: Algorithm;
  count: number;
  /** The profile's history: item → weight (views and purchases). */
  history: ReadonlyMap<string, number>;
  /** The profile's id in the training data, for user_knn (null: use the history alone). */
  user: string | null;
  /** Items that may be recommended (stock, category, not bought …). */
  allow: (item: string) => boolean;
  /** false: the algorithm alone, no content/popular fill (offline evaluation). Default true. */
  fallback?: boolean;
}

export interface Recommendation {
  items: Array<[string, number]>;
  /** The algorithm that produced the first item (a fallback when the asked one had nothing). */
  algorithm: Algorithm;
}

function topN(scores: Map<string, number>, n: number, skip: (item: string) => boolean): Array<[string, number]> {
  return [...scores].filter(([item, score]) => score > 0 && !skip(item)).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
}

function itemKnnScores(model: RecommendationModel, history: ReadonlyMap<string, number>): Map<string, number> {
  const scores = new Map<string, number>();
  for (const [item, weight] of history) {
    for (const [neighbour, similarity] of model.neighbours.get(item) ?? []) scores.set(neighbour, (scores.get(neighbour) ?? 0) + weight * similarity);
  }
  return scores;
}

const USER_NEIGHBOURS = 50;

function userKnnScores(model: RecommendationModel, user: string | null, history: ReadonlyMap<string, number>): Map<string, number> {
  const overlap = new Map<string, number>();
  for (const item of history.keys()) {
    for (const other of model.usersOfItem.get(item) ?? []) if (other !== user) overlap.set(other, (overlap.get(other) ?? 0) + 1);
  }
  const similar = [...overlap]
    .map(([other, shared]) => [other, shared / Math.sqrt(history.size * model.histories.get(other)!.size)] as const)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, USER_NEIGHBOURS);
  const scores = new Map<string, number>();
  for (const [other, similarity] of similar) {
    for (const item of model.histories.get(other)!.keys()) scores.set(item, (scores.get(item) ?? 0) + similarity);
  }
  return scores;
}

function contentScores(model: RecommendationModel, history: ReadonlyMap<string, number>): Map<string, number> {
  const profile = new Map<string, number>();
  for (const [item, weight] of history) {
    for (const [token, w] of model.itemTokens.get(item) ?? []) profile.set(token, (profile.get(token) ?? 0) + weight * w);
  }
  const scores = new Map<string, number>();
  for (const [token, w] of profile) {
    for (const item of model.itemsOfToken.get(token) ?? []) scores.set(item, (scores.get(item) ?? 0) + w * model.itemTokens.get(item)!.get(token)!);
  }
  return scores;
}

/**
 * A top-N list for one history. Items already in the history are never recommended again; the
 * list is filled by the content-based scorer (cold start: a short history still has attributes),
 * then by popularity, so a new profile still gets a full list.
 */
export function recommend(model: RecommendationModel, request: RecommendRequest): Recommendation {
  const { history, count } = request;
  const skip = (item: string) => history.has(item) || !request.allow(item);
  const chain: Algorithm[] =
    request.fallback === false ? [request.algorithm] : [request.algorithm, ...(['content', 'popular'] as const).filter((a) => a !== request.algorithm)];
  const items: Array<[string, number]> = [];
  const taken = new Set<string>();
  let used: Algorithm | null = null;
  for (const algorithm of chain) {
    if (items.length >= count) break;
    let list: Array<[string, number]>;
    if (algorithm === 'popular') {
      list = [];
      for (const entry of model.popular) {
        if (list.length >= count) break;
        if (!skip(entry[0]) && !taken.has(entry[0])) list.push(entry);
      }
    } else {
      if (history.size === 0) continue;
      const scores =
        algorithm === 'item_knn'
          ? itemKnnScores(model, history)
          : algorithm === 'user_knn'
            ? userKnnScores(model, request.user, history)
            : contentScores(model, history);
      list = topN(scores, count, (item) => skip(item) || taken.has(item));
    }
    for (const entry of list) {
      if (items.length >= count) break;
      used ??= algorithm;
      items.push(entry);
      taken.add(entry[0]);
    }
  }
  return { items, algorithm: used ?? request.algorithm };
}
