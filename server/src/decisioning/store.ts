import { ApiError } from '../api/errors.ts';
import type { Condition } from '../segments/ast.ts';
import { checkDefinition, conditionFromInput } from '../segments/definition.ts';
import { printSegment } from '../segments/language/print.ts';
import type { Db, Queryable } from '../storage/database.ts';
import type { CompiledContent, CompiledPlacement } from './policy.ts';
import type { ContentInput, PlacementInput, PlacementUpdate, PlacementView } from './schemas.ts';

/** A content as stored: the input plus its eligibility rule parsed once. */
type StoredContent = ContentInput & { eligibilityAst?: Condition };

interface PlacementRow {
  workspace_id: string;
  id: string;
  key: string;
  name: string;
  policy: CompiledPlacement['policy'];
  goal: CompiledPlacement['goal'];
  min_exploration: number;
  holdout_percent: number;
  sticky_hours: number;
  status: 'active' | 'paused' | 'archived';
  contents: StoredContent[];
  version: number;
  created_at: Date;
  updated_at: Date;
}

const HOUR_MS = 3_600_000;

/** Eligibility may not read events: decide answers from memberships and traits held in memory. */
function behaviourIn(condition: Condition): boolean {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return condition.conditions.some(behaviourIn);
    case 'not':
      return behaviourIn(condition.condition);
    case 'event':
    case 'sequence':
      return true;
    default:
      return false;
  }
}

/** Parses and checks each content's eligibility, and refuses duplicate keys and empty schedules. */
async function prepareContents(db: Db, workspaceId: string, contents: readonly ContentInput[]): Promise<StoredContent[]> {
  const seen = new Set<string>();
  const { rows } = await db.query<{ key: string }>(`select key from segments where workspace_id = $1 and status <> 'archived'`, [workspaceId]);
  const segmentKeys = rows.map((row) => row.key);
  const prepared: StoredContent[] = [];
  for (const [index, content] of contents.entries()) {
    const at = `contents.${index}`;
    if (seen.has(content.key)) throw new ApiError(400, 'invalid_request', `Content key "${content.key}" appears twice`, `${at}.key`);
    seen.add(content.key);
    if (content.startsAt && content.endsAt && Date.parse(content.endsAt) <= Date.parse(content.startsAt)) {
      throw new ApiError(400, 'invalid_request', 'endsAt must be after startsAt', `${at}.endsAt`);
    }
    if (content.eligibility === undefined) {
      prepared.push(content);
      continue;
    }
    let condition: Condition;
    try {
      condition = conditionFromInput({ text: content.eligibility })!;
      await checkDefinition(db, workspaceId, condition, { field: 'text', segmentKeys });
    } catch (error) {
      if (error instanceof ApiError) {
        throw new ApiError(error.statusCode, error.code, `${at}.eligibility: ${error.message}`, `${at}.eligibility`, {}, error.details);
      }
      throw error;
    }
    if (behaviourIn(condition)) {
      throw new ApiError(
        400,
        'invalid_eligibility',
        `${at}.eligibility: behaviour (event/page/screen conditions) cannot be decided in real time here; define it as a segment and write in_segment("…")`,
        `${at}.eligibility`,
      );
    }
    prepared.push({ ...content, eligibility: printSegment(condition), eligibilityAst: condition });
  }
  return prepared;
}

export function compilePlacement(row: PlacementRow): CompiledPlacement {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    key: row.key,
    policy: row.policy,
    goal: row.goal,
    minExploration: row.min_exploration,
    holdoutPercent: row.holdout_percent,
    stickyMs: row.sticky_hours * HOUR_MS,
    status: row.status === 'paused' ? 'paused' : 'active',
    version: row.version,
    contents: row.contents.map(
      (content): CompiledContent => ({
        key: content.key,
        name: content.name ?? null,
        payload: content.payload ?? {},
        eligibility: content.eligibilityAst ?? null,
        priority: content.priority ?? 0,
        weight: content.weight ?? 1,
        startsAt: content.startsAt ? Date.parse(content.startsAt) : null,
        endsAt: content.endsAt ? Date.parse(content.endsAt) : null,
        cap: content.cap ? { impressions: content.cap.impressions, withinMs: content.cap.withinHours * HOUR_MS } : null,
        recommendations: content.recommendations
          ? {
              algorithm: content.recommendations.algorithm ?? 'item_knn',
              count: content.recommendations.count ?? 10,
              inStock: content.recommendations.inStock ?? true,
              excludeBought: content.recommendations.excludeBought ?? true,
              ...(content.recommendations.category === undefined ? {} : { category: content.recommendations.category }),
            }
          : null,
      }),
    ),
  };
}

export interface ArmCounts {
  contentKey: string;
  impressions: number;
  clicks: number;
  conversions: number;
}

function toView(row: PlacementRow, stats: readonly ArmCounts[]): PlacementView {
  return {
    id: row.id,
    key: row.key,
    name: row.name,
    policy: row.policy,
    goal: row.goal,
    minExploration: row.min_exploration,
    holdoutPercent: row.holdout_percent,
    stickyHours: row.sticky_hours,
    status: row.status === 'paused' ? 'paused' : 'active',
    contents: row.contents.map(({ eligibilityAst: _ast, ...content }) => ({ ...content, eligibility: content.eligibility ?? null })),
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    stats: stats.map((s) => ({ content: s.contentKey, impressions: s.impressions, clicks: s.clicks, conversions: s.conversions })),
  };
}

const COLUMNS = `workspace_id, id, key, name, policy, goal, min_exploration, holdout_percent, sticky_hours, status, contents, version, created_at, updated_at`;

export async function armCounts(db: Queryable, workspaceId: string, placementIds: readonly string[]): Promise<Map<string, ArmCounts[]>> {
  const { rows } = await db.query<{ placement_id: string; content_key: string; impressions: string; clicks: string; conversions: string }>(
    `select placement_id, content_key, impressions, clicks, conversions from decision_arm_stats
      where workspace_id = $1 and placement_id = any($2::uuid[]) order by content_key`,
    [workspaceId, placementIds],
  );
  const byPlacement = new Map<string, ArmCounts[]>();
  for (const row of rows) {
    const list = byPlacement.get(row.placement_id) ?? [];
    list.push({ contentKey: row.content_key, impressions: Number(row.impressions), clicks: Number(row.clicks), conversions: Number(row.conversions) });
    byPlacement.set(row.placement_id, list);
  }
  return byPlacement;
}

async function withStats(db: Queryable, row: PlacementRow): Promise<PlacementView> {
  return toView(row, (await armCounts(db, row.workspace_id, [row.id])).get(row.id) ?? []);
}

export async function createPlacement(db: Db, workspaceId: string, input: PlacementInput): Promise<PlacementView> {
  const contents = await prepareContents(db, workspaceId, input.contents);
  const { rows } = await db.query<PlacementRow>(
    `insert into decision_placements (workspace_id, key, name, policy, goal, min_exploration, holdout_percent, sticky_hours, status, contents)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     on conflict (workspace_id, key) do nothing returning ${COLUMNS}`,
    [
      workspaceId,
      input.key,
      input.name,
      input.policy,
      input.goal ?? 'click',
      input.minExploration ?? 0.1,
      input.holdoutPercent ?? 0,
      input.stickyHours ?? 24,
      input.status ?? 'active',
      JSON.stringify(contents),
    ],
  );
  if (!rows[0]) throw new ApiError(409, 'conflict', `A placement with key "${input.key}" already exists`, 'key');
  return withStats(db, rows[0]);
}

async function placementRow(db: Queryable, workspaceId: string, key: string): Promise<PlacementRow> {
  const { rows } = await db.query<PlacementRow>(
    `select ${COLUMNS} from decision_placements where workspace_id = $1 and key = $2 and status <> 'archived'`,
    [workspaceId, key],
  );
  if (!rows[0]) throw new ApiError(404, 'not_found', `No placement "${key}" in this workspace`);
  return rows[0];
}

export async function getPlacement(db: Queryable, workspaceId: string, key: string): Promise<PlacementView> {
  return withStats(db, await placementRow(db, workspaceId, key));
}

export async function listPlacements(db: Queryable, workspaceId: string): Promise<PlacementView[]> {
  const { rows } = await db.query<PlacementRow>(
    `select ${COLUMNS} from decision_placements where workspace_id = $1 and status <> 'archived' order by key`,
    [workspaceId],
  );
  const stats = await armCounts(db, workspaceId, rows.map((row) => row.id));
  return rows.map((row) => toView(row, stats.get(row.id) ?? []));
}

export async function updatePlacement(db: Db, workspaceId: string, key: string, update: PlacementUpdate): Promise<PlacementView> {
  const current = await placementRow(db, workspaceId, key);
  const contents = update.contents === undefined ? current.contents : await prepareContents(db, workspaceId, update.contents);
  const { rows } = await db.query<PlacementRow>(
    `update decision_placements set name = $3, policy = $4, goal = $5, min_exploration = $6, holdout_percent = $7, sticky_hours = $8,
            status = $9, contents = $10, version = version + 1, updated_at = now()
      where workspace_id = $1 and id = $2 returning ${COLUMNS}`,
    [
      workspaceId,
      current.id,
      update.name ?? current.name,
      update.policy ?? current.policy,
      update.goal ?? current.goal,
      update.minExploration ?? current.min_exploration,
      update.holdoutPercent ?? current.holdout_percent,
      update.stickyHours ?? current.sticky_hours,
      update.status ?? current.status,
      JSON.stringify(contents),
    ],
  );
  return withStats(db, rows[0]!);
}

/** Archives a placement: decide answers 404 for it, its decisions and statistics stay. */
export async function archivePlacement(db: Db, workspaceId: string, key: string): Promise<void> {
  const current = await placementRow(db, workspaceId, key);
  await db.query(`update decision_placements set status = 'archived', version = version + 1, updated_at = now() where workspace_id = $1 and id = $2`, [
    workspaceId,
    current.id,
  ]);
}

/** Every live placement of a workspace, compiled, with its version (for the in-process cache). */
export async function loadCompiledPlacements(db: Queryable, workspaceId: string): Promise<CompiledPlacement[]> {
  const { rows } = await db.query<PlacementRow>(`select ${COLUMNS} from decision_placements where workspace_id = $1 and status <> 'archived'`, [workspaceId]);
  return rows.map(compilePlacement);
}

export async function placementVersions(db: Queryable, workspaceId: string): Promise<string> {
  const { rows } = await db.query<{ signature: string }>(
    `select coalesce(string_agg(id::text || ':' || version, ',' order by id), '') as signature from decision_placements where workspace_id = $1`,
    [workspaceId],
  );
  return rows[0]!.signature;
}
