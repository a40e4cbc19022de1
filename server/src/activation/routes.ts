import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import type { Db } from '../storage/database.ts';
import {
  connectSegment,
  createDestination,
  deadLetterForRedelivery,
  deleteDestination,
  disconnectSegment,
  discardDeadLetter,
  findSegmentByKey,
  getDeadLetter,
  getDestination,
  listDeadLetters,
  listDestinations,
  recordRedelivery,
  updateDestination,
} from './destinations.ts';
import { exportCsv, exportFilename, parseExportColumns } from './export.ts';
import {
  ConnectSegmentBodySchema,
  CreateDestinationBodySchema,
  DeadLetterDetailSchema,
  DeadLetterListQuerySchema,
  DeadLetterListSchema,
  DeadLetterParams,
  DeadLetterSchema,
  DestinationListSchema,
  DestinationParams,
  DestinationSchema,
  DestinationSegmentParams,
  DestinationSegmentSchema,
  DestinationStatusSchema,
  DestinationWithSecretSchema,
  ExportParams,
  ExportQuerySchema,
  UpdateDestinationBodySchema,
} from './schemas.ts';
import { attemptRedelivery, fetchPost, resumeSweep, scheduleSweep, type Post } from './sync.ts';

export interface ActivationOptions {
  db: Db;
  keys: KeyResolver;
  now?: () => Date;
  /** How redeliveries POST; tests may replace it. */
  post?: Post;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['activation'], security: [{ bearer: [] }], ...schema });

/**
 * Activation for a workspace's server key: segment export as CSV, webhook destinations with the
 * segments they receive, and their dead letters. The workspace always comes from the key.
 */
export const activationRoutes: FastifyPluginAsyncTypebox<ActivationOptions> = async (app, options) => {
  const { db, keys } = options;
  const now = options.now ?? (() => new Date());
  const post = options.post ?? fetchPost;
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;
  // The sweep job re-arms itself, but one that exhausted its retries (a long database outage)
  // would leave connected segments unsent until the next connect; each server start re-arms it.
  app.addHook('onReady', async () => {
    await resumeSweep(db).catch((error: unknown) => app.log.error({ err: error }, 'could not start the activation sweep'));
  });

  app.get(
    '/v1/segments/:key/export.csv',
    {
      config: { permission: 'segments.export' },
      schema: docs(
        'Current members as CSV (streamed): profile_id, entered_at, then ?identifiers= (several values of a type joined by |, most recent first) and ?traits= (as trait.<key>)',
        {
          params: ExportParams,
          querystring: ExportQuerySchema,
          produces: ['text/csv'],
          response: { 200: Type.Unknown({ description: 'text/csv, UTF-8, header row first' }), ...errors(400, 401, 403, 404) },
        },
      ),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const segment = await findSegmentByKey(db, workspaceId, request.params.key);
      const { config } = await loadWorkspaceIdentity(db, workspaceId);
      const columns = parseExportColumns(request.query, config);
      reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', exportFilename(segment.key, now()))
        .header('cache-control', 'no-store');
      return reply.send(exportCsv(db, workspaceId, segment.id, columns, { bom: request.query.bom ?? false }));
    },
  );

  app.post(
    '/v1/destinations',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Create a webhook destination; the answer shows the signing secret once', {
        body: CreateDestinationBodySchema,
        response: { 201: DestinationWithSecretSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => reply.code(201).send(await createDestination(db, await workspaceOf(request), request.body)),
  );

  app.get(
    '/v1/destinations',
    { config: { permission: 'destinations.read' }, schema: docs('Destinations with their segments and delivery state', { response: { 200: DestinationListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: await listDestinations(db, await workspaceOf(request)) }),
  );

  app.get(
    '/v1/destinations/:id',
    {
      config: { permission: 'destinations.read' },
      schema: docs('One destination with its segments and delivery state', {
        params: DestinationParams,
        response: { 200: DestinationSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => getDestination(db, await workspaceOf(request), request.params.id),
  );

  app.patch(
    '/v1/destinations/:id',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Change name, URL, status, settings or secret (rotateSecret shows the new one once)', {
        params: DestinationParams,
        body: UpdateDestinationBodySchema,
        response: { 200: Type.Union([DestinationWithSecretSchema, DestinationSchema]), ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const updated = await updateDestination(db, await workspaceOf(request), request.params.id, request.body);
      if (updated.status === 'active') await scheduleSweep(db);
      return updated;
    },
  );

  app.delete(
    '/v1/destinations/:id',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Delete a destination, its segment connections and dead letters', {
        params: DestinationParams,
        response: { 204: Type.Null(), ...errors(400, 401, 403, 404) },
      }),
    },
    async (request, reply) => {
      await deleteDestination(db, await workspaceOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/destinations/:id/segments',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Connect a segment: its membership changes from now on (and with sendExisting its current members first, as adds) are sent', {
        params: DestinationParams,
        body: ConnectSegmentBodySchema,
        response: { 201: DestinationSegmentSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      return reply.code(201).send(await connectSegment(db, workspaceId, request.params.id, request.body, (client) => scheduleSweep(client)));
    },
  );

  app.patch(
    '/v1/destinations/:id/segments/:segment',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Pause or resume sending one segment to the destination (changes wait, nothing is skipped)', {
        params: DestinationSegmentParams,
        body: Type.Object({ status: DestinationStatusSchema }, { additionalProperties: false }),
        response: { 200: DestinationSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      await getDestination(db, workspaceId, request.params.id);
      const segment = await findSegmentByKey(db, workspaceId, request.params.segment, 'segment');
      const { rowCount } = await db.query(
        'update destination_segments set status = $4 where workspace_id = $1 and destination_id = $2 and segment_id = $3',
        [workspaceId, request.params.id, segment.id, request.body.status],
      );
      if (!rowCount) throw new ApiError(404, 'not_found', `Segment "${segment.key}" is not connected to this destination`, 'segment');
      if (request.body.status === 'active') await scheduleSweep(db);
      return getDestination(db, workspaceId, request.params.id);
    },
  );

  app.delete(
    '/v1/destinations/:id/segments/:segment',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Disconnect a segment; nothing more is sent for it', {
        params: DestinationSegmentParams,
        response: { 204: Type.Null(), ...errors(400, 401, 403, 404) },
      }),
    },
    async (request, reply) => {
      await disconnectSegment(db, await workspaceOf(request), request.params.id, request.params.segment);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/destinations/:id/dead-letters',
    {
      config: { permission: 'destinations.read' },
      schema: docs('Batches that could not be delivered, newest first', {
        params: DestinationParams,
        querystring: DeadLetterListQuerySchema,
        response: { 200: DeadLetterListSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => listDeadLetters(db, await workspaceOf(request), request.params.id, request.query),
  );

  app.get(
    '/v1/destinations/:id/dead-letters/:deadLetter',
    {
      config: { permission: 'destinations.read' },
      schema: docs('One dead letter with the batch body as sent', {
        params: DeadLetterParams,
        response: { 200: DeadLetterDetailSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const { body: _body, ...letter } = await getDeadLetter(db, await workspaceOf(request), request.params.id, request.params.deadLetter);
      return letter;
    },
  );

  app.post(
    '/v1/destinations/:id/dead-letters/:deadLetter/redeliver',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Send a dead batch again now (same body and batch id, signed afresh); 502 with the error when it fails again', {
        params: DeadLetterParams,
        response: { 200: DeadLetterSchema, ...errors(400, 401, 403, 404, 409, 502) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const { id, deadLetter } = request.params;
      const { letter, url, secret, settings } = await deadLetterForRedelivery(db, workspaceId, id, deadLetter);
      const outcome = await attemptRedelivery(letter.body, letter.batchId, letter.attempts + 1, { url, secret, timeoutMs: settings.timeoutMs }, now(), post);
      const updated = await recordRedelivery(db, workspaceId, id, deadLetter, outcome, now());
      if (!outcome.delivered) throw new ApiError(502, 'delivery_failed', `Redelivery failed: ${outcome.error}; the batch stays dead`);
      return updated;
    },
  );

  app.post(
    '/v1/destinations/:id/dead-letters/:deadLetter/discard',
    {
      config: { permission: 'destinations.write' },
      schema: docs('Give up on a dead batch (kept, marked discarded)', {
        params: DeadLetterParams,
        response: { 200: DeadLetterSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => discardDeadLetter(db, await workspaceOf(request), request.params.id, request.params.deadLetter),
  );
};
