import { ApiError } from '../api/errors.ts';
import type { DbClient, Queryable } from '../storage/database.ts';
import type { ModelConfig, ModelKind, ModelRunView, ModelView } from './schemas.ts';

/*
 * Model definitions (models) and their training runs (model_runs), and the worker job that runs
 * them: one scheduled job per model (job key `models.run:<id>`) that re-queues itself
 * scheduleHours after each run, plus one job per run requested through the API.
 */

export const RUN_TASK = 'models.run';

export interface Model {
  id: string;
  key: string;
  kind: ModelKind;
  name: string;
  description: string | null;
  config: ModelConfig;
  status: 'active' | 'paused' | 'archived';
  scheduleHours: number;
  createdAt: Date;
  updatedAt: Date;
}

interface ModelRow {
  id: string;
  key: string;
  kind: ModelKind;
  name: string;
  description: string | null;
  config: ModelConfig;
  status: Model['status'];
  schedule_hours: number;
  created_at: Date;
  updated_at: Date;
}

const MODEL_COLUMNS = 'id, key, kind, name, description, config, status, schedule_hours, created_at, updated_at';
const toModel = (row: ModelRow): Model => ({
  id: row.id,
  key: row.key,
  kind: row.kind,
  name: row.name,
  description: row.description,
  config: row.config,
  status: row.status,
  scheduleHours: row.schedule_hours,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** The config with every default filled in: what is stored, so a run never guesses. */
export function withDefaults(config: ModelConfig): ModelConfig {
  const purchase = { purchaseEvent: 'Order Completed', revenueProperty: 'revenue' };
  switch (config.kind) {
    case 'rfm':
      return { ...purchase, ...config };
    case 'lifecycle':
      return { activityEvent: 'Order Completed', newDays: 30, atRiskDays: 60, churnedDays: 180, reactivatedDays: 30, ...config };
    case 'clv':
      return { ...purchase, horizonDays: 365, annualDiscountRate: 0.1, holdoutDays: 84, ...config };
    case 'churn':
    case 'purchase':
      return { ...purchase, horizonDays: 30, lookbackDays: 90, l2: 1, ...config };
    case 'lookalike':
      return { ...purchase, lookbackDays: 90, l2: 1, traits: [], ...config };
  }
}

/** The trait keys a model writes; segments read them as trait.<key>. */
export function modelTraitKeys(key: string, kind: ModelKind): string[] {
  const suffixes: Record<ModelKind, string[]> = {
    rfm: ['group', 'score', 'r', 'f', 'm', 'frequency', 'monetary', 'last_purchase_at'],
    lifecycle: ['stage'],
    clv: ['value', 'p_alive', 'expected_purchases'],
    churn: ['score', 'decile'],
    purchase: ['score', 'decile'],
    lookalike: ['score', 'rank'],
  };
  return suffixes[kind].map((suffix) => `${key}_${suffix}`);
}

/** The profile_traits source_name of a model's values. */
export const modelTraitSource = (key: string) => `model:${key}`;

/**
 * Refuses a model whose trait keys another model or a computed trait already owns (one key, one
 * owner; the trait writer also never overwrites a value it does not own).
 */
async function refuseTakenTraitKeys(db: Queryable, workspaceId: string, key: string, kind: ModelKind): Promise<void> {
  const keys = modelTraitKeys(key, kind);
  const { rows } = await db.query<{ key: string; kind: ModelKind }>(`select key, kind from models where workspace_id = $1 and key <> $2`, [workspaceId, key]);
  for (const other of rows) {
    const clash = modelTraitKeys(other.key, other.kind).find((k) => keys.includes(k));
    if (clash) throw new ApiError(409, 'trait_key_in_use', `Trait "${clash}" is written by model "${other.key}"; choose another key`, 'key');
  }
  const { rows: computed } = await db.query<{ key: string }>(`select key from computed_traits where workspace_id = $1 and key = any($2::text[])`, [workspaceId, keys]);
  if (computed[0]) throw new ApiError(409, 'trait_key_in_use', `Trait "${computed[0].key}" is a computed trait's; choose another model key`, 'key');
}

export async function createModel(
  client: DbClient,
  workspaceId: string,
  input: { key: string; name: string; description?: string | null; config: ModelConfig; scheduleHours?: number },
): Promise<Model> {
  await refuseTakenTraitKeys(client, workspaceId, input.key, input.config.kind);
  try {
    const { rows } = await client.query<ModelRow>(
      `insert into models (workspace_id, key, kind, name, description, config, schedule_hours) values ($1, $2, $3, $4, $5, $6, $7) returning ${MODEL_COLUMNS}`,
      [workspaceId, input.key, input.config.kind, input.name, input.description ?? null, JSON.stringify(withDefaults(input.config)), input.scheduleHours ?? 24],
    );
    return toModel(rows[0]!);
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw new ApiError(409, 'model_exists', `A model with key "${input.key}" already exists`, 'key');
    throw error;
  }
}

export async function getModel(db: Queryable, workspaceId: string, key: string): Promise<Model> {
  const { rows } = await db.query<ModelRow>(`select ${MODEL_COLUMNS} from models where workspace_id = $1 and key = $2`, [workspaceId, key]);
  if (!rows[0]) throw new ApiError(404, 'not_found', `No model "${key}"`, 'key');
  return toModel(rows[0]);
}

export async function getModelById(db: Queryable, workspaceId: string, id: string): Promise<Model | null> {
  const { rows } = await db.query<ModelRow>(`select ${MODEL_COLUMNS} from models where workspace_id = $1 and id = $2`, [workspaceId, id]);
  return rows[0] ? toModel(rows[0]) : null;
}

export async function listModels(db: Queryable, workspaceId: string): Promise<Model[]> {
  const { rows } = await db.query<ModelRow>(`select ${MODEL_COLUMNS} from models where workspace_id = $1 and status <> 'archived' order by key`, [workspaceId]);
  return rows.map(toModel);
}

export async function updateModel(
  client: DbClient,
  workspaceId: string,
  key: string,
  changes: { name?: string; description?: string | null; config?: ModelConfig; scheduleHours?: number; status?: 'active' | 'paused' },
): Promise<Model> {
  const current = await getModel(client, workspaceId, key);
  if (current.status === 'archived') throw new ApiError(409, 'model_archived', `Model "${key}" is archived`, 'key');
  if (changes.config && changes.config.kind !== current.kind) {
    throw new ApiError(400, 'invalid_request', `A model's kind cannot change (it is ${current.kind}); create another model`, 'config.kind');
  }
  const { rows } = await client.query<ModelRow>(
    `update models set name = $3, description = $4, config = $5, schedule_hours = $6, status = $7, updated_at = now()
      where workspace_id = $1 and key = $2 returning ${MODEL_COLUMNS}`,
    [
      workspaceId,
      key,
      changes.name ?? current.name,
      changes.description === undefined ? current.description : changes.description,
      JSON.stringify(changes.config ? withDefaults(changes.config) : current.config),
      changes.scheduleHours ?? current.scheduleHours,
      changes.status ?? current.status,
    ],
  );
  return toModel(rows[0]!);
}

/** Archives a model: no more runs, and its trait values leave every profile (segments re-evaluate). */
export async function archiveModel(client: DbClient, workspaceId: string, key: string): Promise<{ model: Model; profiles: string[] }> {
  const { rows } = await client.query<ModelRow>(
    `update models set status = 'archived', updated_at = now() where workspace_id = $1 and key = $2 returning ${MODEL_COLUMNS}`,
    [workspaceId, key],
  );
  if (!rows[0]) throw new ApiError(404, 'not_found', `No model "${key}"`, 'key');
  const { rows: removed } = await client.query<{ profile_id: string }>(
    `delete from profile_traits where workspace_id = $1 and key = any($2::text[]) and source_kind = 'computed' and source_name = $3 returning profile_id`,
    [workspaceId, modelTraitKeys(key, rows[0].kind), modelTraitSource(key)],
  );
  await client.query(`select graphile_worker.remove_job($1)`, [scheduleJobKey(rows[0].id)]);
  return { model: toModel(rows[0]), profiles: [...new Set(removed.map((r) => r.profile_id))] };
}

// ---------------------------------------------------------------------------------------------
// Runs

export interface ModelRun {
  id: string;
  modelId: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  trigger: 'schedule' | 'api';
  config: ModelConfig;
  parameters: Record<string, unknown> | null;
  metrics: Record<string, unknown> | null;
  diagnostics: Record<string, unknown> | null;
  profilesScored: number | null;
  profilesChanged: number | null;
  error: string | null;
  queuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

const RUN_COLUMNS =
  'id, model_id, status, trigger, config, parameters, metrics, diagnostics, profiles_scored, profiles_changed, error, queued_at, started_at, finished_at';

interface RunRow {
  id: string;
  model_id: string;
  status: ModelRun['status'];
  trigger: ModelRun['trigger'];
  config: ModelConfig;
  parameters: Record<string, unknown> | null;
  metrics: Record<string, unknown> | null;
  diagnostics: Record<string, unknown> | null;
  profiles_scored: number | null;
  profiles_changed: number | null;
  error: string | null;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const toRun = (row: RunRow): ModelRun => ({
  id: row.id,
  modelId: row.model_id,
  status: row.status,
  trigger: row.trigger,
  config: row.config,
  parameters: row.parameters,
  metrics: row.metrics,
  diagnostics: row.diagnostics,
  profilesScored: row.profiles_scored,
  profilesChanged: row.profiles_changed,
  error: row.error,
  queuedAt: row.queued_at,
  startedAt: row.started_at,
  finishedAt: row.finished_at,
});

export async function createRun(db: Queryable, workspaceId: string, model: Model, trigger: ModelRun['trigger']): Promise<ModelRun> {
  const { rows } = await db.query<RunRow>(
    `insert into model_runs (workspace_id, model_id, trigger, config) values ($1, $2, $3, $4) returning ${RUN_COLUMNS}`,
    [workspaceId, model.id, trigger, JSON.stringify(model.config)],
  );
  return toRun(rows[0]!);
}

export async function getRun(db: Queryable, workspaceId: string, id: string): Promise<ModelRun | null> {
  const { rows } = await db.query<RunRow>(`select ${RUN_COLUMNS} from model_runs where workspace_id = $1 and id = $2`, [workspaceId, id]);
  return rows[0] ? toRun(rows[0]) : null;
}

export async function listRuns(db: Queryable, workspaceId: string, modelId: string, limit: number): Promise<ModelRun[]> {
  const { rows } = await db.query<RunRow>(
    `select ${RUN_COLUMNS} from model_runs where workspace_id = $1 and model_id = $2 order by queued_at desc, id limit $3`,
    [workspaceId, modelId, limit],
  );
  return rows.map(toRun);
}

/** The latest run of each model, for listings. */
export async function latestRuns(db: Queryable, workspaceId: string, modelIds: readonly string[]): Promise<Map<string, ModelRun>> {
  const { rows } = await db.query<RunRow>(
    `select distinct on (model_id) ${RUN_COLUMNS} from model_runs
      where workspace_id = $1 and model_id = any($2::uuid[]) order by model_id, queued_at desc, id`,
    [workspaceId, modelIds],
  );
  return new Map(rows.map((row) => [row.model_id, toRun(row)]));
}

export async function markRunning(db: Queryable, workspaceId: string, runId: string): Promise<void> {
  await db.query(`update model_runs set status = 'running', started_at = now(), error = null where workspace_id = $1 and id = $2`, [workspaceId, runId]);
}

export interface RunOutcome {
  parameters: Record<string, unknown>;
  metrics: Record<string, unknown>;
  diagnostics: Record<string, unknown>;
  profilesScored: number;
  profilesChanged: number;
}

export async function markSucceeded(db: Queryable, workspaceId: string, runId: string, outcome: RunOutcome): Promise<void> {
  await db.query(
    `update model_runs set status = 'succeeded', finished_at = now(), parameters = $3, metrics = $4, diagnostics = $5,
            profiles_scored = $6, profiles_changed = $7
      where workspace_id = $1 and id = $2`,
    [
      workspaceId,
      runId,
      JSON.stringify(outcome.parameters),
      JSON.stringify(outcome.metrics),
      JSON.stringify(outcome.diagnostics),
      outcome.profilesScored,
      outcome.profilesChanged,
    ],
  );
}

export async function markFailed(db: Queryable, workspaceId: string, runId: string, error: string): Promise<void> {
  await db.query(`update model_runs set status = 'failed', finished_at = now(), error = $3 where workspace_id = $1 and id = $2`, [workspaceId, runId, error]);
}

const scheduleJobKey = (modelId: string) => `${RUN_TASK}:${modelId}`;

/** Queues a run requested now (one job per run). */
export async function queueRun(db: Queryable, workspaceId: string, model: Model, runId: string): Promise<void> {
  await db.query(`select graphile_worker.add_job($1, $2::json, max_attempts => 1)`, [RUN_TASK, JSON.stringify({ workspaceId, modelId: model.id, runId })]);
}

/** (Re)schedules the model's periodic run at `at`; one pending scheduled job per model. A failure before the run records itself (the database away) is retried, so the schedule is not lost. */
export async function scheduleModel(db: Queryable, workspaceId: string, modelId: string, at: Date): Promise<void> {
  await db.query(`select graphile_worker.add_job($1, $2::json, run_at => $3, job_key => $4, job_key_mode => 'replace', max_attempts => 5)`, [
    RUN_TASK,
    JSON.stringify({ workspaceId, modelId }),
    at,
    scheduleJobKey(modelId),
  ]);
}

export function runView(modelKey: string, run: ModelRun): ModelRunView {
  return {
    id: run.id,
    modelKey,
    status: run.status,
    trigger: run.trigger,
    config: run.config,
    parameters: run.parameters,
    metrics: run.metrics,
    diagnostics: run.diagnostics,
    profilesScored: run.profilesScored,
    profilesChanged: run.profilesChanged,
    error: run.error,
    queuedAt: run.queuedAt.toISOString(),
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
  };
}

export function modelView(model: Model, lastRun: ModelRun | null): ModelView {
  return {
    id: model.id,
    key: model.key,
    kind: model.kind,
    name: model.name,
    description: model.description,
    config: model.config,
    status: model.status,
    scheduleHours: model.scheduleHours,
    traits: modelTraitKeys(model.key, model.kind),
    lastRun: lastRun ? runView(model.key, lastRun) : null,
    createdAt: model.createdAt.toISOString(),
    updatedAt: model.updatedAt.toISOString(),
  };
}
