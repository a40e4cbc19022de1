import cors from '@fastify/cors';
import { type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { presentedWriteKey, requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { importItems, MAX_ITEMS_PER_IMPORT } from './recommend/items.ts';
import { modelSummary, trainRecommendations } from './recommend/train.ts';
import { createDecisioning, type Decisioning, type DecisioningOptions } from './runtime.ts';
import {
  DecideQuerySchema,
  DecisionSchema,
  FeedbackBodySchema,
  FeedbackParams,
  FeedbackResultSchema,
  PlacementInputSchema,
  PlacementKeyParams,
  PlacementListSchema,
  PlacementSchema,
  PlacementUpdateSchema,
} from './schemas.ts';
import { archivePlacement, createPlacement, getPlacement, listPlacements, updatePlacement } from './store.ts';

export interface DecisioningRoutesOptions {
  db: Db;
  keys: KeyResolver;
  now: () => Date;
  /** Cache settings of the decide runtime (tests turn the background loops off). */
  runtime?: DecisioningOptions;
  /** A decide runtime made beforehand (benchmarks warm it first); closed with the server. Default: one made here with `runtime`. */
  decisioning?: Decisioning;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['decisioning'], security: [{ bearer: [] }], ...schema });
const read = { permission: 'decisioning.read' } as const;
const write = { permission: 'decisioning.write' } as const;

const ItemsImportSchema = Type.Object({
  imported: Type.Integer({ description: 'Items created or updated (the last line wins for a repeated id)' }),
  rejected: Type.Array(Type.Object({ line: Type.Integer(), field: Type.String(), message: Type.String() })),
});
const TrainingSchema = Type.Object({
  trainedAt: Type.String({ format: 'date-time' }),
  version: Type.Number(),
  interactions: Type.Integer(),
  profiles: Type.Integer(),
  items: Type.Integer(),
  durationMs: Type.Integer(),
});
const ITEMS_BODY_LIMIT = 32 * 1024 * 1024;

/**
 * Placements, decide, outcome reports, the item catalogue and recommendation training for a
 * workspace's server key; and, under /v1/personalize, decide and outcome reports for the SDK with a
 * (public) write key. One decide runtime (runtime.ts) per server holds the in-process caches.
 */
export const decisioningRoutes: FastifyPluginAsyncTypebox<DecisioningRoutesOptions> = async (app, options) => {
  const { db, keys, now } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  const runtime = options.decisioning ?? createDecisioning(db, { now, ...options.runtime });
  app.addHook('onClose', async () => runtime.close());
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.post(
    '/v1/placements',
    {
      config: write,
      schema: docs('Create a placement (e.g. app_home_banner) with its candidate contents and policy', {
        body: PlacementInputSchema,
        response: { 201: PlacementSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const created = await createPlacement(db, workspaceId, request.body);
      await runtime.invalidate(workspaceId);
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/v1/placements',
    { config: read, schema: docs('Placements of the workspace with their per-content results', { response: { 200: PlacementListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: await listPlacements(db, await workspaceOf(request)) }),
  );

  app.get(
    '/v1/placements/:key',
    { config: read, schema: docs('A placement with its per-content results', { params: PlacementKeyParams, response: { 200: PlacementSchema, ...errors(400, 401, 403, 404) } }) },
    async (request) => getPlacement(db, await workspaceOf(request), request.params.key),
  );

  app.patch(
    '/v1/placements/:key',
    {
      config: write,
      schema: docs('Edit a placement; contents given replace the list (results per content key are kept)', {
        params: PlacementKeyParams,
        body: PlacementUpdateSchema,
        response: { 200: PlacementSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const updated = await updatePlacement(db, workspaceId, request.params.key, request.body);
      await runtime.invalidate(workspaceId);
      return updated;
    },
  );

  app.delete(
    '/v1/placements/:key',
    { config: write, schema: docs('Archive a placement: decide answers 404 for it', { params: PlacementKeyParams, response: { 204: Type.Null(), ...errors(400, 401, 403, 404) } }) },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      await archivePlacement(db, workspaceId, request.params.key);
      await runtime.invalidate(workspaceId);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/decide',
    {
      config: read,
      schema: docs('The content a placement shows a profile now, with the decision id to report outcomes and the propensity', {
        description: 'profile: a profile id or <type>:<value> (an identifier nobody has yet is decided as an unknown visitor); or anonymousId/userId as the SDK knows them.',
        querystring: DecideQuerySchema,
        response: { 200: DecisionSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      reply.header('cache-control', 'private, no-store');
      return runtime.decide(workspaceId, request.query);
    },
  );

  app.post(
    '/v1/decisions/:id/events',
    {
      config: write,
      schema: docs('Report an impression, click or conversion of a decision (idempotent per kind); feeds the bandit and the timeline', {
        params: FeedbackParams,
        body: FeedbackBodySchema,
        response: { 200: FeedbackResultSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const result = await runtime.feedback(workspaceId, request.params.id, request.body.type, request.body.itemId);
      return { decisionId: request.params.id, type: request.body.type, ...result };
    },
  );

  await app.register(async (items) => {
    items.addContentTypeParser(['text/csv', 'application/x-ndjson', 'application/ndjson'], { parseAs: 'string', bodyLimit: ITEMS_BODY_LIMIT }, (_request, body, done) =>
      done(null, body),
    );
    items.post(
      '/v1/decisioning/items',
      {
        config: write,
        bodyLimit: ITEMS_BODY_LIMIT,
        schema: docs(`Import or update catalogue items (text/csv, application/x-ndjson or a JSON array; up to ${MAX_ITEMS_PER_IMPORT})`, {
          description:
            'Fields: itemId (or id, product_id, sku), name, category, inStock (true/false, 1/0, yes/no; default true); every other field or column is an attribute (in CSV, a|b is a list). Invalid lines are reported, valid ones imported.',
          response: { 200: ItemsImportSchema, ...errors(400, 401, 403, 413, 415) },
        }),
      },
      async (request) => {
        const workspaceId = await workspaceOf(request);
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        const format = type === 'text/csv' ? 'csv' : type.endsWith('ndjson') ? 'ndjson' : 'json';
        const result = await importItems(db, workspaceId, request.body, format);
        runtime.recommender.forget(workspaceId);
        return result;
      },
    );
  });

  app.post(
    '/v1/decisioning/recommendations/train',
    {
      config: write,
      schema: docs('Train the recommendation model now from the purchase and view events (it also trains hourly)', {
        response: { 200: TrainingSchema, ...errors(401, 403) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const summary = await trainRecommendations(db, workspaceId, now());
      runtime.recommender.forget(workspaceId);
      return summary;
    },
  );

  app.get(
    '/v1/decisioning/recommendations/model',
    { config: read, schema: docs('The latest trained recommendation model', { response: { 200: TrainingSchema, ...errors(401, 403, 404) } }) },
    async (request) => {
      const summary = await modelSummary(db, await workspaceOf(request));
      if (!summary) throw new ApiError(404, 'not_found', 'No model trained yet: import items and send Product Viewed / Order Completed events, then train');
      return summary;
    },
  );

  const workspaceOfWriteKey = async (request: FastifyRequest): Promise<string> => {
    const key = presentedWriteKey(request, undefined);
    if (!key) throw new ApiError(401, 'unauthorized', 'A write key is required: HTTP Basic username or X-Write-Key header');
    const resolved = await keys.resolve(key);
    if (!resolved || resolved.kind !== 'write') throw new ApiError(401, 'unauthorized', 'Unknown or disabled write key');
    return resolved.workspaceId;
  };
  const VisitorDecideQuery = Type.Omit(DecideQuerySchema, ['profile']);

  // The SDK's contract (sdk/src/personalize: getDecision): GET /v1/decisions/{placement}?anonymousId=&userId=.
  await app.register(
    async (plain) => {
      const sdk = plain.withTypeProvider<TypeBoxTypeProvider>();
      await sdk.register(cors, { origin: true, methods: ['GET', 'OPTIONS'], maxAge: 86_400 });
      sdk.setValidatorCompiler(strictValidatorCompiler);
      sdk.get(
        '/:placement',
        {
          config: { permission: 'public' },
          schema: {
            summary: "The SDK's getDecision: decide a placement for the current visitor (write key)",
            tags: ['decisioning'],
            security: [{ basicAuth: [] }, { writeKey: [] }],
            params: Type.Object({ placement: Type.String({ minLength: 1, maxLength: 64 }) }),
            querystring: Type.Omit(VisitorDecideQuery, ['placement']),
            response: { 200: DecisionSchema, ...errors(400, 401, 404) },
          },
        },
        async (request, reply) => {
          const workspaceId = await workspaceOfWriteKey(request);
          if (request.query.anonymousId === undefined && request.query.userId === undefined) {
            throw new ApiError(400, 'invalid_request', "Give the visitor's anonymousId or userId", 'anonymousId');
          }
          reply.header('cache-control', 'private, no-store');
          return runtime.decide(workspaceId, { ...request.query, placement: request.params.placement });
        },
      );
    },
    { prefix: '/v1/decisions' },
  );

  await app.register(
    async (plain) => {
      const visitor = plain.withTypeProvider<TypeBoxTypeProvider>();
      // Called from any site that embeds the SDK, like the collection and visitor segment APIs.
      await visitor.register(cors, { origin: true, methods: ['GET', 'POST', 'OPTIONS'], maxAge: 86_400 });
      visitor.setValidatorCompiler(strictValidatorCompiler);
      visitor.get(
        '/decide',
        {
          config: { permission: 'public' },
          schema: {
            summary: 'Decide a placement for the current visitor (SDK, write key)',
            description: 'Give anonymousId and/or userId (userId is looked up first). A visitor not known yet is decided from no traits or segments.',
            tags: ['decisioning'],
            security: [{ basicAuth: [] }, { writeKey: [] }],
            querystring: VisitorDecideQuery,
            response: { 200: DecisionSchema, ...errors(400, 401, 404) },
          },
        },
        async (request, reply) => {
          const workspaceId = await workspaceOfWriteKey(request);
          if (request.query.anonymousId === undefined && request.query.userId === undefined) {
            throw new ApiError(400, 'invalid_request', "Give the visitor's anonymousId or userId", 'anonymousId');
          }
          reply.header('cache-control', 'private, no-store');
          return runtime.decide(workspaceId, request.query);
        },
      );
      visitor.post(
        '/decisions/:id/events',
        {
          config: { permission: 'public' },
          schema: {
            summary: 'Report an impression, click or conversion of a decision from the SDK (write key)',
            tags: ['decisioning'],
            security: [{ basicAuth: [] }, { writeKey: [] }],
            params: FeedbackParams,
            body: FeedbackBodySchema,
            response: { 200: FeedbackResultSchema, ...errors(400, 401, 404) },
          },
        },
        async (request) => {
          const workspaceId = await workspaceOfWriteKey(request);
          const result = await runtime.feedback(workspaceId, request.params.id, request.body.type, request.body.itemId);
          return { decisionId: request.params.id, type: request.body.type, ...result };
        },
      );
    },
    { prefix: '/v1/personalize' },
  );
};
