import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { preciseValidatorCompiler } from '../segments/computed/schemas.ts';
import { enqueueSegmentEvaluation } from '../segments/queue.ts';
import { findSegmentByKey } from '../segments/store.ts';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { checkThresholds } from './math/lifecycle.ts';
import {
  CreateModelSchema,
  ModelListSchema,
  ModelParams,
  ModelRunSchema,
  ModelSchema,
  RunListQuerySchema,
  RunListSchema,
  RunParams,
  UpdateModelSchema,
  type LifecycleConfig,
  type ModelConfig,
} from './schemas.ts';
import {
  archiveModel,
  createModel,
  createRun,
  getModel,
  getRun,
  latestRuns,
  listModels,
  listRuns,
  modelView,
  queueRun,
  runView,
  scheduleModel,
  updateModel,
  withDefaults,
} from './store.ts';

export interface ModelRoutesOptions {
  db: Db;
  keys: KeyResolver;
  now?: () => Date;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['models'], security: [{ bearer: [] }], ...schema });
const read = { permission: 'models.read' } as const;
const write = { permission: 'models.write' } as const;

/**
 * Customer insight models for a workspace's server key: define (RFM, lifecycle, CLV, churn and
 * purchase propensity, lookalike), edit, pause, archive; run now; read runs with their fitted
 * parameters, metrics (fit quality, AUC) and diagnostics (holdout series, calibration, top
 * features). A new model's first run is queued at once, then every scheduleHours.
 */
export const modelRoutes: FastifyPluginAsyncTypebox<ModelRoutesOptions> = async (app, options) => {
  const { db, keys } = options;
  const clock = options.now ?? (() => new Date());
  app.setValidatorCompiler(preciseValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.post(
    '/v1/models',
    {
      config: write,
      schema: docs('Define a model; its first training run is queued at once, then it retrains on its schedule', {
        body: CreateModelSchema,
        response: { 201: ModelSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const body = request.body;
      await checkConfig(db, workspaceId, body.config, body.key, true);
      const model = await withTransaction(db, async (client) => {
        const created = await createModel(client, workspaceId, body);
        await scheduleModel(client, workspaceId, created.id, clock());
        return created;
      });
      return reply.code(201).send(modelView(model, null));
    },
  );

  app.get(
    '/v1/models',
    { config: read, schema: docs("The workspace's models by key, each with its latest run", { response: { 200: ModelListSchema, ...errors(401, 403) } }) },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const models = await listModels(db, workspaceId);
      const runs = await latestRuns(db, workspaceId, models.map((m) => m.id));
      return { items: models.map((m) => modelView(m, runs.get(m.id) ?? null)) };
    },
  );

  app.get(
    '/v1/models/:key',
    {
      config: read,
      schema: docs('A model with its latest run (parameters, metrics, diagnostics)', { params: ModelParams, response: { 200: ModelSchema, ...errors(400, 401, 403, 404) } }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const model = await getModel(db, workspaceId, request.params.key);
      return modelView(model, (await latestRuns(db, workspaceId, [model.id])).get(model.id) ?? null);
    },
  );

  app.patch(
    '/v1/models/:key',
    {
      config: write,
      schema: docs('Edit a model: name, config (same kind), schedule, pause or resume; the next run uses the new config', {
        params: ModelParams,
        body: UpdateModelSchema,
        response: { 200: ModelSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      if (request.body.config) await checkConfig(db, workspaceId, request.body.config, request.params.key, false);
      const model = await withTransaction(db, async (client) => {
        const before = await getModel(client, workspaceId, request.params.key);
        const updated = await updateModel(client, workspaceId, request.params.key, request.body);
        const resumed = before.status === 'paused' && updated.status === 'active';
        if (resumed || before.scheduleHours !== updated.scheduleHours) {
          await scheduleModel(client, workspaceId, updated.id, resumed ? clock() : new Date(clock().getTime() + updated.scheduleHours * 3_600_000));
        }
        return updated;
      });
      return modelView(model, (await latestRuns(db, workspaceId, [model.id])).get(model.id) ?? null);
    },
  );

  app.delete(
    '/v1/models/:key',
    {
      config: write,
      schema: docs("Archive a model: it stops training and its traits leave every profile (segments on them re-evaluate)", {
        params: ModelParams,
        response: { 200: ModelSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const model = await withTransaction(db, async (client) => {
        const { model: archived, profiles } = await archiveModel(client, workspaceId, request.params.key);
        await enqueueSegmentEvaluation(client, workspaceId, profiles);
        return archived;
      });
      return modelView(model, null);
    },
  );

  app.post(
    '/v1/models/:key/runs',
    {
      config: write,
      schema: docs('Train the model now (the worker runs it); poll the run for its outcome', {
        params: ModelParams,
        response: { 202: ModelRunSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const run = await withTransaction(db, async (client) => {
        const model = await getModel(client, workspaceId, request.params.key);
        if (model.status !== 'active') throw new ApiError(409, 'model_not_active', `Model "${model.key}" is ${model.status}`, 'key');
        const created = await createRun(client, workspaceId, model, 'api');
        await queueRun(client, workspaceId, model, created.id);
        return created;
      });
      return reply.code(202).send(runView(request.params.key, run));
    },
  );

  app.get(
    '/v1/models/:key/runs',
    {
      config: read,
      schema: docs("The model's runs, newest first", { params: ModelParams, querystring: RunListQuerySchema, response: { 200: RunListSchema, ...errors(400, 401, 403, 404) } }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const model = await getModel(db, workspaceId, request.params.key);
      return { items: (await listRuns(db, workspaceId, model.id, request.query.limit ?? 20)).map((run) => runView(model.key, run)) };
    },
  );

  app.get(
    '/v1/models/:key/runs/:runId',
    {
      config: read,
      schema: docs('One run: status, fitted parameters, metrics, diagnostics (CLV holdout series, calibration bins, top features)', {
        params: RunParams,
        response: { 200: ModelRunSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const model = await getModel(db, workspaceId, request.params.key);
      const run = await getRun(db, workspaceId, request.params.runId);
      if (!run || run.modelId !== model.id) throw new ApiError(404, 'not_found', `No run ${request.params.runId} of model "${model.key}"`, 'runId');
      return runView(model.key, run);
    },
  );
};

/** Checks what the schema cannot: threshold order, the seed segment's existence, the audience segment's key. */
async function checkConfig(db: Queryable, workspaceId: string, config: ModelConfig, modelKey: string, creating: boolean): Promise<void> {
  const full = withDefaults(config);
  if (full.kind === 'lifecycle') {
    const problem = checkThresholds(full as LifecycleConfig);
    if (problem) throw new ApiError(400, 'invalid_config', `config: ${problem}`, 'config.churnedDays');
  }
  if (full.kind === 'lookalike') {
    if (!(await findSegmentByKey(db, workspaceId, full.seedSegment))) {
      throw new ApiError(400, 'invalid_config', `config.seedSegment: no segment "${full.seedSegment}" in this workspace`, 'config.seedSegment');
    }
    const audienceKey = full.segmentKey ?? modelKey;
    if (audienceKey === full.seedSegment) throw new ApiError(400, 'invalid_config', 'config.segmentKey: the audience cannot be the seed segment', 'config.segmentKey');
    if (creating && (await findSegmentByKey(db, workspaceId, audienceKey))) {
      throw new ApiError(409, 'segment_exists', `A segment "${audienceKey}" already exists; set config.segmentKey to a new key for the audience`, 'config.segmentKey');
    }
  }
}
