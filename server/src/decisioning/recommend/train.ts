import { withTransaction, type Db, type Queryable } from '../../storage/database.ts';
import { trainModel, type CatalogueItem } from './algorithms.ts';
import type { Interaction } from './metrics.ts';

/*
 * Training from the event history: the Segment e-commerce spec's events, per profile and item —
 * `Product Viewed` (properties.product_id, weight 1), `Product Added` (weight 2) and
 * `Order Completed` (each properties.products[].product_id, weight 4, marks the item bought) —
 * within the lookback window. Writes the profiles' item histories and the model's stored parts.
 */

export const VIEW_WEIGHT = 1;
export const ADD_WEIGHT = 2;
export const PURCHASE_WEIGHT = 4;
const DAY_MS = 86_400_000;

export interface TrainingSummary {
  trainedAt: string;
  version: number;
  interactions: number;
  profiles: number;
  items: number;
  durationMs: number;
}

export async function loadCatalogue(db: Queryable, workspaceId: string): Promise<CatalogueItem[]> {
  const { rows } = await db.query<{ item_id: string; name: string | null; category: string | null; attributes: Record<string, unknown>; in_stock: boolean }>(
    'select item_id, name, category, attributes, in_stock from decision_items where workspace_id = $1',
    [workspaceId],
  );
  return rows.map((row) => ({ id: row.item_id, name: row.name, category: row.category, attributes: row.attributes, inStock: row.in_stock }));
}

interface HistoryRow {
  profile_id: string;
  item_id: string;
  weight: number;
  bought: boolean;
  last_at: Date;
}

export async function trainRecommendations(db: Db, workspaceId: string, now: Date, options: { lookbackDays?: number; halfLifeDays?: number } = {}): Promise<TrainingSummary> {
  const started = performance.now();
  const since = new Date(now.getTime() - (options.lookbackDays ?? 180) * DAY_MS);
  const { rows } = await db.query<HistoryRow>(
    `with interactions as (
       select profile_id, properties->>'product_id' as item_id,
              case event when 'Product Added' then ${ADD_WEIGHT} else ${VIEW_WEIGHT} end as weight, false as bought, timestamp
         from events
        where workspace_id = $1 and type = 'track' and event in ('Product Viewed', 'Product Added')
          and timestamp >= $2 and timestamp <= $3 and profile_id is not null
       union all
       select e.profile_id, p.value->>'product_id', ${PURCHASE_WEIGHT}, true, e.timestamp
         from events e
         cross join lateral jsonb_array_elements(case when jsonb_typeof(e.properties->'products') = 'array' then e.properties->'products' else '[]'::jsonb end) p
        where e.workspace_id = $1 and e.type = 'track' and e.event = 'Order Completed'
          and e.timestamp >= $2 and e.timestamp <= $3 and e.profile_id is not null)
     select i.profile_id, i.item_id, sum(i.weight)::float8 as weight, bool_or(i.bought) as bought, max(i.timestamp) as last_at
       from interactions i join profiles p on p.workspace_id = $1 and p.id = i.profile_id and p.merged_into is null
      where i.item_id is not null and length(i.item_id) between 1 and 200
      group by i.profile_id, i.item_id`,
    [workspaceId, since, now],
  );
  const interactions: Interaction[] = rows.map((row) => ({ user: row.profile_id, item: row.item_id, at: row.last_at.getTime(), weight: row.weight }));
  const catalogue = await loadCatalogue(db, workspaceId);
  const model = trainModel(interactions, catalogue, { now: now.getTime(), halfLifeDays: options.halfLifeDays ?? 14 });
  const durationMs = Math.round(performance.now() - started);
  const version = Date.now();
  const profiles = new Set(rows.map((row) => row.profile_id)).size;
  await withTransaction(db, async (client) => {
    await client.query('delete from decision_profile_items where workspace_id = $1', [workspaceId]);
    for (let offset = 0; offset < rows.length; offset += 10_000) {
      const chunk = rows.slice(offset, offset + 10_000);
      await client.query(
        `insert into decision_profile_items (workspace_id, profile_id, item_id, weight, bought, last_at)
         select $1, * from unnest($2::uuid[], $3::text[], $4::float8[], $5::boolean[], $6::timestamptz[])`,
        [workspaceId, chunk.map((r) => r.profile_id), chunk.map((r) => r.item_id), chunk.map((r) => r.weight), chunk.map((r) => r.bought), chunk.map((r) => r.last_at)],
      );
    }
    await client.query(
      `insert into decision_models (workspace_id, trained_at, version, interactions, profiles, items, duration_ms, neighbours, popular)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       on conflict (workspace_id) do update set trained_at = excluded.trained_at, version = excluded.version, interactions = excluded.interactions,
         profiles = excluded.profiles, items = excluded.items, duration_ms = excluded.duration_ms, neighbours = excluded.neighbours, popular = excluded.popular`,
      [
        workspaceId,
        now,
        version,
        rows.length,
        profiles,
        model.neighbours.size,
        durationMs,
        JSON.stringify(Object.fromEntries(model.neighbours)),
        JSON.stringify(model.popular.slice(0, 1_000)),
      ],
    );
  });
  return { trainedAt: now.toISOString(), version, interactions: rows.length, profiles, items: model.neighbours.size, durationMs };
}

export async function modelSummary(db: Queryable, workspaceId: string): Promise<TrainingSummary | null> {
  const { rows } = await db.query<{ trained_at: Date; version: string; interactions: number; profiles: number; items: number; duration_ms: number }>(
    'select trained_at, version, interactions, profiles, items, duration_ms from decision_models where workspace_id = $1',
    [workspaceId],
  );
  const row = rows[0];
  return row
    ? { trainedAt: row.trained_at.toISOString(), version: Number(row.version), interactions: row.interactions, profiles: row.profiles, items: row.items, durationMs: row.duration_ms }
    : null;
}

/**
 * The schedule: retrains every workspace that has items or a recommendations content and whose
 * model is older than `intervalMs` (or missing). Returns how many were trained.
 */
export async function trainDueRecommendations(db: Db, now: Date, intervalMs = 3_600_000): Promise<number> {
  const { rows } = await db.query<{ workspace_id: string }>(
    `select w.workspace_id from (
        select distinct workspace_id from decision_items
        union select workspace_id from decision_placements where status <> 'archived' and contents::text like '%"recommendations"%') w
       left join decision_models m on m.workspace_id = w.workspace_id
      where m.trained_at is null or m.trained_at < $1`,
    [new Date(now.getTime() - intervalMs)],
  );
  for (const row of rows) await trainRecommendations(db, row.workspace_id, now);
  return rows.length;
}
