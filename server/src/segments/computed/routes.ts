import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../../api/auth.ts';
import { ErrorResponseSchema } from '../../api/error-schema.ts';
import { ApiError } from '../../api/errors.ts';
import type { Db, Queryable } from '../../storage/database.ts';
import { withTransaction } from '../../storage/database.ts';
import type { Condition } from '../ast.ts';
import { segmentReferences } from '../references.ts';
import { eventNeedOf, loadMatchingEvents } from './compute.ts';
import type { ComputedTraitDefinition } from './definition.ts';
import { evaluateComputedTrait } from './evaluate.ts';
import {
  ArchiveResultSchema,
  ComputeAcceptedSchema,
  ComputedTraitListQuerySchema,
  ComputedTraitListSchema,
  ComputedTraitParams,
  ComputedTraitSchema,
  CreateComputedTraitSchema,
  preciseValidatorCompiler,
  PreviewBodySchema,
  PreviewResultSchema,
  UpdateComputedTraitSchema,
} from './schemas.ts';
import {
  archiveComputedTrait,
  createComputedTrait,
  getComputedTrait,
  listComputedTraits,
  updateComputedTrait,
  type ComputedTrait,
} from './store.ts';

export interface ComputedTraitRoutesOptions {
  db: Db;
  keys: KeyResolver;
  /** The clock previews evaluate at; injectable for tests. */
  now?: () => Date;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['computed-traits'], security: [{ bearer: [] }], ...schema });

/** The graphile-worker task that runs a full computation (worker/tasks.ts). */
export const COMPUTE_TASK = 'computed-traits.compute';

/**
 * Computed traits for a workspace's server key: definitions (create, list, read, edit, archive),
 * a full recomputation on demand, and a preview of a definition on a sample of profiles. Creating,
 * editing a definition or reactivating queues a full computation for the worker (state
 * `computing` until it is done); from then on the real-time worker keeps values current.
 */
export const computedTraitRoutes: FastifyPluginAsyncTypebox<ComputedTraitRoutesOptions> = async (app, options) => {
  const { db, keys } = options;
  const clock = options.now ?? (() => new Date());
  app.setValidatorCompiler(preciseValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.post(
    '/v1/computed-traits',
    {
      config: { permission: 'traits.write' },
      schema: docs('Define a computed trait; its values for every profile are computed by the worker, then kept current', {
        body: CreateComputedTraitSchema,
        response: { 201: ComputedTraitSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const body = request.body;
      assertEvaluable(body.definition);
      const trait = await withTransaction(db, async (client) => {
        const created = await createComputedTrait(client, workspaceId, body);
        await queueComputation(client, workspaceId, created);
        return created;
      });
      return reply.code(201).send(view(trait));
    },
  );

  app.get(
    '/v1/computed-traits',
    {
      config: { permission: 'traits.read' },
      schema: docs("The workspace's computed traits by key", {
        querystring: ComputedTraitListQuerySchema,
        response: { 200: ComputedTraitListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => ({ items: (await listComputedTraits(db, await workspaceOf(request), request.query.status)).map(view) }),
  );

  app.get(
    '/v1/computed-traits/:key',
    {
      config: { permission: 'traits.read' },
      schema: docs('A computed trait: definition, version, computation state', {
        params: ComputedTraitParams,
        response: { 200: ComputedTraitSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => view(await getComputedTrait(db, await workspaceOf(request), request.params.key)),
  );

  app.patch(
    '/v1/computed-traits/:key',
    {
      config: { permission: 'traits.write' },
      schema: docs('Edit a computed trait: a new definition (new version) or reactivation recomputes every value; only real changes are recorded', {
        params: ComputedTraitParams,
        body: UpdateComputedTraitSchema,
        response: { 200: ComputedTraitSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      if (request.body.definition) assertEvaluable(request.body.definition);
      const trait = await withTransaction(db, async (client) => {
        const { trait: updated, recompute } = await updateComputedTrait(client, workspaceId, request.params.key, request.body);
        if (recompute) await queueComputation(client, workspaceId, updated);
        return updated;
      });
      return view(trait);
    },
  );

  app.delete(
    '/v1/computed-traits/:key',
    {
      config: { permission: 'traits.write' },
      schema: docs('Archive a computed trait: it stops updating and its values leave the profiles (refused while a segment reads it)', {
        params: ComputedTraitParams,
        response: { 200: ArchiveResultSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const key = request.params.key;
      return withTransaction(db, async (client) => {
        await getComputedTrait(client, workspaceId, key);
        const readers = await segmentsReadingTrait(client, workspaceId, key);
        if (readers.length > 0) {
          throw new ApiError(409, 'computed_trait_in_use', `Segments read trait.${key}: ${readers.join(', ')}; change or archive them first`, 'key');
        }
        const { trait, removed } = await archiveComputedTrait(client, workspaceId, key);
        return { trait: view(trait), removedValues: removed };
      });
    },
  );

  app.post(
    '/v1/computed-traits/:key/refresh',
    {
      config: { permission: 'traits.write' },
      schema: docs('Queue a full recomputation of an active computed trait (only changed values are written)', {
        params: ComputedTraitParams,
        response: { 202: ComputeAcceptedSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const result = await withTransaction(db, async (client) => {
        const trait = await getComputedTrait(client, workspaceId, request.params.key);
        if (trait.status !== 'active') {
          throw new ApiError(409, 'computed_trait_not_active', `Computed trait "${trait.key}" is ${trait.status}; set it active first`, 'key');
        }
        await client.query(
          `update computed_traits set state = 'computing', last_error = null, updated_at = now() where workspace_id = $1 and id = $2`,
          [workspaceId, trait.id],
        );
        const jobId = await queueComputation(client, workspaceId, trait);
        return { trait: { ...trait, state: 'computing' as const, lastError: null }, jobId };
      });
      return reply.code(202).send({ trait: view(result.trait), jobId: result.jobId });
    },
  );

  app.post(
    '/v1/computed-traits/preview',
    {
      config: { permission: 'traits.preview' },
      schema: docs('Evaluate a definition on a sample of live profiles (or the given ones) without saving anything', {
        body: PreviewBodySchema,
        response: { 200: PreviewResultSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const started = Date.now();
      const { definition, profileIds, sampleSize } = request.body;
      assertEvaluable(definition);
      const now = clock().getTime();
      const ids = profileIds ? await requireLiveProfiles(db, workspaceId, profileIds) : await sampleProfiles(db, workspaceId, sampleSize ?? 20);
      const events = await loadMatchingEvents(db, workspaceId, ids, [eventNeedOf(definition)], now);
      const items = ids.map((profileId) => {
        const result = evaluateComputedTrait(definition, events.get(profileId) ?? [], now);
        return {
          profileId,
          ...(result.value === undefined ? {} : { value: result.value }),
          recheckAt: result.recheckAt === null ? null : new Date(result.recheckAt).toISOString(),
        };
      });
      return { items, withValue: items.filter((item) => 'value' in item).length, durationMs: Date.now() - started };
    },
  );
};

function view(trait: ComputedTrait) {
  return {
    ...trait,
    computedAt: trait.computedAt?.toISOString() ?? null,
    createdAt: trait.createdAt.toISOString(),
    updatedAt: trait.updatedAt.toISOString(),
  };
}

/**
 * Refuses a definition the evaluator cannot run (say, a pattern JavaScript cannot compile), which
 * the schema alone does not catch, before it is saved and fails in the worker.
 */
function assertEvaluable(definition: ComputedTraitDefinition): void {
  try {
    evaluateComputedTrait(definition, [], 0);
  } catch (error) {
    throw new ApiError(400, 'invalid_definition', `definition: ${error instanceof Error ? error.message : String(error)}`, 'definition');
  }
}

/** Queues the worker's full computation; one pending job per trait (a newer edit replaces it). */
export async function queueComputation(db: Queryable, workspaceId: string, trait: Pick<ComputedTrait, 'id'>): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `select id::text from graphile_worker.add_job($1, $2::json, job_key => $3, max_attempts => 3)`,
    [COMPUTE_TASK, JSON.stringify({ workspaceId, computedTraitId: trait.id }), `${COMPUTE_TASK}:${trait.id}`],
  );
  return rows[0]!.id;
}

async function segmentsReadingTrait(db: Queryable, workspaceId: string, key: string): Promise<string[]> {
  const { rows } = await db.query<{ key: string; definition: Condition }>(
    `select key, definition from segments where workspace_id = $1 and status <> 'archived' and definition is not null order by key`,
    [workspaceId],
  );
  return rows.filter((row) => segmentReferences(row.definition).traits.includes(key)).map((row) => row.key);
}

/** A spread-out sample: the live profiles from a random point of the id order on (wrapping around). */
async function sampleProfiles(db: Queryable, workspaceId: string, size: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `with start as (select gen_random_uuid() as id)
     (select p.id from profiles p, start where p.workspace_id = $1 and p.merged_into is null and p.id >= start.id order by p.id limit $2)
     union all
     (select p.id from profiles p, start where p.workspace_id = $1 and p.merged_into is null and p.id < start.id order by p.id limit $2)`,
    [workspaceId, size],
  );
  return rows.slice(0, size).map((row) => row.id);
}

async function requireLiveProfiles(db: Queryable, workspaceId: string, ids: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'select id from profiles where workspace_id = $1 and id = any($2::uuid[]) and merged_into is null',
    [workspaceId, ids],
  );
  const live = new Set(rows.map((row) => row.id));
  const missing = ids.findIndex((id) => !live.has(id));
  if (missing >= 0) throw new ApiError(400, 'unknown_profile', `No live profile ${ids[missing]} in this workspace`, `profileIds.${missing}`);
  return [...new Set(ids)];
}
