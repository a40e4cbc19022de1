import type { Db } from '../../storage/database.ts';
import type { Algorithm, RecommendationSpec } from '../schemas.ts';
import { assembleModel, recommend, type CatalogueItem, type RecommendationModel } from './algorithms.ts';
import { loadCatalogue } from './train.ts';

interface Serving {
  version: number;
  catalogueSignature: string;
  model: RecommendationModel;
  catalogue: Map<string, CatalogueItem>;
  bought: Map<string, Set<string>>;
}

export interface RecommendedItem {
  itemId: string;
  name: string | null;
  category: string | null;
  attributes: Record<string, unknown>;
  score: number;
}

const EMPTY_HISTORY: ReadonlyMap<string, number> = new Map();

/**
 * Serves recommendation contents from memory: the workspace's stored model, the profiles' item
 * histories from the last training and the catalogue (stock and categories), reloaded when a new
 * model is trained or the catalogue changes.
 */
export function createRecommender(db: Db) {
  const serving = new Map<string, Promise<Serving | null>>();

  async function catalogueSignature(workspaceId: string): Promise<string> {
    const { rows } = await db.query<{ signature: string }>(
      `select count(*)::text || ':' || coalesce(max(updated_at)::text, '') as signature from decision_items where workspace_id = $1`,
      [workspaceId],
    );
    return rows[0]!.signature;
  }

  async function load(workspaceId: string): Promise<Serving | null> {
    const { rows } = await db.query<{ version: string; trained_at: Date; neighbours: Record<string, Array<[string, number]>>; popular: Array<[string, number]> }>(
      'select version, trained_at, neighbours, popular from decision_models where workspace_id = $1',
      [workspaceId],
    );
    const stored = rows[0];
    const signature = await catalogueSignature(workspaceId);
    const catalogueItems = await loadCatalogue(db, workspaceId);
    const { rows: history } = await db.query<{ profile_id: string; item_id: string; weight: number; bought: boolean }>(
      'select profile_id, item_id, weight, bought from decision_profile_items where workspace_id = $1',
      [workspaceId],
    );
    const histories = new Map<string, Map<string, number>>();
    const bought = new Map<string, Set<string>>();
    for (const row of history) {
      const h = histories.get(row.profile_id) ?? new Map<string, number>();
      h.set(row.item_id, row.weight);
      histories.set(row.profile_id, h);
      if (row.bought) {
        const b = bought.get(row.profile_id) ?? new Set<string>();
        b.add(row.item_id);
        bought.set(row.profile_id, b);
      }
    }
    const model = assembleModel(
      {
        trainedAt: stored?.trained_at.getTime() ?? 0,
        neighbours: new Map(Object.entries(stored?.neighbours ?? {})),
        popular: stored?.popular ?? [],
      },
      histories,
      catalogueItems,
    );
    return { version: stored ? Number(stored.version) : 0, catalogueSignature: signature, model, catalogue: new Map(catalogueItems.map((i) => [i.id, i])), bought };
  }

  function servingOf(workspaceId: string): Promise<Serving | null> {
    let entry = serving.get(workspaceId);
    if (!entry) {
      entry = load(workspaceId);
      serving.set(workspaceId, entry);
      entry.catch(() => serving.delete(workspaceId));
    }
    return entry;
  }

  return {
    async recommend(workspaceId: string, profileId: string | null, spec: RecommendationSpec): Promise<{ items: RecommendedItem[]; algorithm: Algorithm }> {
      const state = await servingOf(workspaceId);
      if (!state) return { items: [], algorithm: spec.algorithm ?? 'item_knn' };
      const bought = (profileId && state.bought.get(profileId)) || null;
      const allow = (itemId: string): boolean => {
        const item = state.catalogue.get(itemId);
        // Only catalogue items are shown: an id seen in events but never imported has nothing to render.
        if (!item) return false;
        if (spec.inStock !== false && !item.inStock) return false;
        if (spec.category !== undefined && item.category !== spec.category) return false;
        if (spec.excludeBought !== false && bought?.has(itemId)) return false;
        return true;
      };
      const history = (profileId && state.model.histories.get(profileId)) || EMPTY_HISTORY;
      const result = recommend(state.model, { algorithm: spec.algorithm ?? 'item_knn', count: spec.count ?? 10, history, user: profileId, allow });
      return {
        algorithm: result.algorithm,
        items: result.items.map(([itemId, score]) => {
          const item = state.catalogue.get(itemId)!;
          return { itemId, name: item.name, category: item.category, attributes: item.attributes, score };
        }),
      };
    },
    /** Reloads workspaces whose model version or catalogue changed (checked when `poll`). */
    async refresh(poll: boolean): Promise<void> {
      if (!poll) return;
      for (const [workspaceId, entry] of serving) {
        const state = await entry.catch(() => null);
        const { rows } = await db.query<{ version: string }>('select version from decision_models where workspace_id = $1', [workspaceId]);
        const version = rows[0] ? Number(rows[0].version) : 0;
        if (!state || state.version !== version || state.catalogueSignature !== (await catalogueSignature(workspaceId))) {
          const fresh = load(workspaceId);
          await fresh;
          serving.set(workspaceId, fresh);
        }
      }
    },
    /** Drops a workspace's serving state so the next request loads the latest model and catalogue. */
    forget(workspaceId: string): void {
      serving.delete(workspaceId);
    },
  };
}

export type Recommender = ReturnType<typeof createRecommender>;
