import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CatalogueEventDetailSchema, CatalogueListQuerySchema, CatalogueListSchema, EventTypeSchema } from '../catalogue/schemas.ts';
import { getCatalogueEvent, listCatalogueEvents } from '../catalogue/store.ts';
import {
  BulkReplayBodySchema,
  BulkReplayResultSchema,
  discardQuarantineItem,
  getQuarantineItem,
  listQuarantine,
  QuarantineDetailSchema,
  QuarantineItemSchema,
  QuarantineListQuerySchema,
  QuarantineListSchema,
  replayOpenItems,
  replayQuarantineItem,
  ReplayBodySchema,
  ReplayRejectedError,
  ReplayResultSchema,
} from '../ingest/quarantine.ts';
import { EventListQuerySchema, EventListSchema, listRecentEvents } from '../ingest/recent-events.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { rescheduleSegmentsForTimeZone } from '../segments/schedule.ts';
import { rescheduleJourneysForTimeZone } from '../journeys/schedules.ts';
import {
  ApiKeySchema,
  CreateKeySchema,
  CreateSourceSchema,
  CreateWorkspaceSchema,
  IssuedKeySchema,
  RotatedKeySchema,
  RotateKeySchema,
  SourceSchema,
  UpdateKeySchema,
  UpdateSourceSchema,
  UpdateWorkspaceSchema,
  WorkspaceSchema,
} from '../workspaces/schemas.ts';
import {
  createKey,
  createSource,
  createWorkspace,
  getSource,
  getWorkspace,
  listKeys,
  listSources,
  listWorkspaces,
  rotateKey,
  setKeyStatus,
  updateSource,
  updateWorkspace,
} from '../workspaces/store.ts';
import { requireAdmin, type KeyResolver } from './auth.ts';
import { ErrorResponseSchema } from './error-schema.ts';
import { assertMayGrant, keyGrant } from '../privacy/grants.ts';
import { ApiError } from './errors.ts';
import { strictValidatorCompiler } from './validation.ts';

export interface AdminOptions {
  db: Db;
  verifyAdmin: (token: string) => boolean;
  /** Cleared after every change so a disabled key, source or workspace is refused at once. */
  keys: KeyResolver;
  /** The clock schedules are moved by when a workspace's time zone changes. */
  now?: () => Date;
}

const WorkspaceParams = Type.Object({
  workspace: Type.String({ minLength: 1, description: 'Workspace id or slug' }),
});
const SourceParams = Type.Composite([WorkspaceParams, Type.Object({ source: Type.String({ minLength: 1, description: 'Source id or name' }) })]);
const KeyParams = Type.Composite([WorkspaceParams, Type.Object({ keyId: Type.String({ format: 'uuid' }) })]);
const QuarantineParams = Type.Composite([WorkspaceParams, Type.Object({ id: Type.String({ format: 'uuid' }) })]);
const CatalogueTypeParams = Type.Composite([WorkspaceParams, Type.Object({ type: EventTypeSchema })]);
const CatalogueEventParams = Type.Composite([CatalogueTypeParams, Type.Object({ name: Type.String() })]);

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const list = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Object({ items: Type.Array(item) });

function docs<S extends object>(summary: string, schema: S) {
  return { summary, tags: ['admin'], security: [{ bearer: [] }], ...schema };
}

/** A bad time zone is reported by the store as a RangeError; here it gets its field. */
async function withTimeZoneField<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof RangeError) throw new ApiError(400, 'invalid_request', error.message, 'timeZone');
    throw error;
  }
}

/**
 * `/admin/*`: workspaces, sources, keys, quarantine and catalogue of any workspace, for the
 * instance operator holding the admin token.
 */
export const adminRoutes: FastifyPluginAsyncTypebox<AdminOptions> = async (app, options) => {
  const { db, keys } = options;
  const now = options.now ?? (() => new Date());

  app.setValidatorCompiler(strictValidatorCompiler);
  app.addHook('onRequest', async (request) => requireAdmin(options.verifyAdmin, request));
  // Keys are cached for a moment per process; any change here may disable one, so drop the cache
  // before the answer goes out (a client reacting to the answer already sees the new state).
  app.addHook('onSend', async (request, _reply, payload) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') keys.invalidate();
    return payload;
  });

  // ---- workspaces ----------------------------------------------------------------------------
  app.post(
    '/workspaces',
    { config: { permission: 'workspaces.create' }, schema: docs('Create a workspace (tenant)', { body: CreateWorkspaceSchema, response: { 201: WorkspaceSchema, ...errors(400, 401, 409) } }) },
    async (request, reply) => reply.code(201).send(await withTimeZoneField(() => createWorkspace(db, request.body))),
  );

  app.get('/workspaces', { config: { permission: 'workspaces.list' }, schema: docs('List workspaces', { response: { 200: list(WorkspaceSchema), ...errors(401) } }) }, async () => ({
    items: await listWorkspaces(db),
  }));

  app.get(
    '/workspaces/:workspace',
    { config: { permission: 'workspaces.read' }, schema: docs('Get a workspace by id or slug', { params: WorkspaceParams, response: { 200: WorkspaceSchema, ...errors(401, 404) } }) },
    async (request) => getWorkspace(db, request.params.workspace),
  );

  app.patch(
    '/workspaces/:workspace',
    {
      config: { permission: 'workspaces.write' },
      schema: docs('Rename a workspace, change its time zone, or disable/enable it (a disabled workspace accepts no keys)', {
        params: WorkspaceParams,
        body: UpdateWorkspaceSchema,
        response: { 200: WorkspaceSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return withTimeZoneField(() =>
        withTransaction(db, async (client) => {
          const updated = await updateWorkspace(client, workspace.id, request.body);
          if (updated.timeZone !== workspace.timeZone) {
            // Runs already placed in the old zone's wall-clock time move with the zone.
            const at = now();
            await rescheduleSegmentsForTimeZone(client, workspace.id, updated.timeZone, at);
            await rescheduleJourneysForTimeZone(client, workspace.id, updated.timeZone, at);
          }
          return updated;
        }),
      );
    },
  );

  // ---- sources -------------------------------------------------------------------------------
  app.post(
    '/workspaces/:workspace/sources',
    {
      config: { permission: 'sources.write' },
      schema: docs('Create a source; its first write key is returned once', {
        params: WorkspaceParams,
        body: CreateSourceSchema,
        response: { 201: Type.Object({ source: SourceSchema, writeKey: IssuedKeySchema }), ...errors(400, 401, 404, 409) },
      }),
    },
    async (request, reply) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return reply.code(201).send(await createSource(db, workspace.id, request.body));
    },
  );

  app.get(
    '/workspaces/:workspace/sources',
    { config: { permission: 'sources.read' }, schema: docs('List the sources of a workspace', { params: WorkspaceParams, response: { 200: list(SourceSchema), ...errors(401, 404) } }) },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return { items: await listSources(db, workspace.id) };
    },
  );

  app.get(
    '/workspaces/:workspace/sources/:source',
    { config: { permission: 'sources.read' }, schema: docs('Get a source by id or name', { params: SourceParams, response: { 200: SourceSchema, ...errors(401, 404) } }) },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return getSource(db, workspace.id, request.params.source);
    },
  );

  app.patch(
    '/workspaces/:workspace/sources/:source',
    {
      config: { permission: 'sources.write' },
      schema: docs('Rename a source, change its rate limit, or disable/enable it (a disabled source\'s write keys are refused)', {
        params: SourceParams,
        body: UpdateSourceSchema,
        response: { 200: SourceSchema, ...errors(400, 401, 404, 409) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const source = await getSource(db, workspace.id, request.params.source);
      return updateSource(db, workspace.id, source.id, request.body);
    },
  );

  // ---- keys ----------------------------------------------------------------------------------
  app.get(
    '/workspaces/:workspace/keys',
    { config: { permission: 'keys.read' }, schema: docs('List the keys of a workspace (never their secret)', { params: WorkspaceParams, response: { 200: list(ApiKeySchema), ...errors(401, 404) } }) },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return { items: await listKeys(db, workspace.id) };
    },
  );

  app.post(
    '/workspaces/:workspace/keys',
    {
      config: { permission: 'keys.write' },
      schema: docs('Issue a write key for a source or a server key for the workspace; the key is returned once', {
        params: WorkspaceParams,
        body: CreateKeySchema,
        response: { 201: IssuedKeySchema, ...errors(400, 401, 404) },
      }),
    },
    async (request, reply) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const { kind, sourceId, permissions } = request.body;
      assertMayGrant(request, keyGrant(kind, permissions ?? null), permissions ?? null, `issue this ${kind} key`, 'permissions');
      if (kind === 'write') {
        if (!sourceId) throw new ApiError(400, 'invalid_request', 'A write key belongs to a source: sourceId is required', 'sourceId');
        const source = await getSource(db, workspace.id, sourceId);
        return reply.code(201).send(await createKey(db, workspace.id, { kind, sourceId: source.id, permissions }));
      }
      if (sourceId) throw new ApiError(400, 'invalid_request', 'A server key reads the whole workspace: omit sourceId', 'sourceId');
      return reply.code(201).send(await createKey(db, workspace.id, { kind, permissions }));
    },
  );

  app.patch(
    '/workspaces/:workspace/keys/:keyId',
    {
      config: { permission: 'keys.write' },
      schema: docs('Disable or enable a key', {
        params: KeyParams,
        body: UpdateKeySchema,
        response: { 200: ApiKeySchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return setKeyStatus(db, workspace.id, request.params.keyId, request.body.status);
    },
  );

  app.post(
    '/workspaces/:workspace/keys/:keyId/rotate',
    {
      config: { permission: 'keys.write' },
      schema: docs('Replace a key with a new one (returned once); the old key works for graceSeconds more, or stops now', {
        params: KeyParams,
        body: RotateKeySchema,
        response: { 201: RotatedKeySchema, ...errors(400, 401, 404) },
      }),
    },
    async (request, reply) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const old = (await listKeys(db, workspace.id)).find((key) => key.id === request.params.keyId);
      // Rotating hands the caller a fresh secret with the old key's permissions.
      if (old) assertMayGrant(request, keyGrant(old.kind, old.permissions), old.permissions, 'rotate this key', 'keyId');
      const rotated = await rotateKey(db, workspace.id, request.params.keyId, request.body.graceSeconds ?? 0);
      return reply.code(201).send({ key: rotated.issued, previous: rotated.previous });
    },
  );

  // ---- quarantine ----------------------------------------------------------------------------
  app.get(
    '/workspaces/:workspace/quarantine',
    {
      config: { permission: 'quarantine.read' },
      schema: docs('Items that failed validation, newest first', {
        params: WorkspaceParams,
        querystring: QuarantineListQuerySchema,
        response: { 200: QuarantineListSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return listQuarantine(db, workspace.id, request.query);
    },
  );

  app.post(
    '/workspaces/:workspace/quarantine/replay',
    {
      config: { permission: 'quarantine.write' },
      schema: docs('Replay open items as received (e.g. after fixing a source\'s rate limit or a validation rule)', {
        params: WorkspaceParams,
        body: BulkReplayBodySchema,
        response: { 200: BulkReplayResultSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return replayOpenItems(db, workspace.id, request.body);
    },
  );

  app.get(
    '/workspaces/:workspace/quarantine/:id',
    {
      config: { permission: 'quarantine.read' },
      schema: docs('One quarantined item with its payload', {
        params: QuarantineParams,
        response: { 200: QuarantineDetailSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return getQuarantineItem(db, workspace.id, request.params.id);
    },
  );

  app.post(
    '/workspaces/:workspace/quarantine/:id/replay',
    {
      config: { permission: 'quarantine.write' },
      schema: docs('Validate and store an item again, as received or with a corrected payload; 422 when still invalid', {
        params: QuarantineParams,
        body: ReplayBodySchema,
        response: { 200: ReplayResultSchema, ...errors(400, 401, 404, 422) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      try {
        return await replayQuarantineItem(db, workspace.id, request.params.id, request.body);
      } catch (error) {
        if (error instanceof ReplayRejectedError) {
          const { error: code, message, field } = error.rejection;
          throw new ApiError(422, code, message, field ?? undefined);
        }
        throw error;
      }
    },
  );

  app.post(
    '/workspaces/:workspace/quarantine/:id/discard',
    {
      config: { permission: 'quarantine.write' },
      schema: docs('Mark an open item as not to be replayed (it is kept)', {
        params: QuarantineParams,
        response: { 200: QuarantineItemSchema, ...errors(400, 401, 404, 409) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return discardQuarantineItem(db, workspace.id, request.params.id);
    },
  );

  // ---- events and catalogue (what the workspace's server key can read) -----------------------
  app.get(
    '/workspaces/:workspace/events',
    {
      config: { permission: 'events.read' },
      schema: docs('Recent events of a workspace, newest first', {
        params: WorkspaceParams,
        querystring: EventListQuerySchema,
        response: { 200: EventListSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return listRecentEvents(db, workspace.id, request.query);
    },
  );

  app.get(
    '/workspaces/:workspace/catalogue/events',
    {
      config: { permission: 'catalogue.read' },
      schema: docs('Events the workspace has sent, most frequent first', {
        params: WorkspaceParams,
        querystring: CatalogueListQuerySchema,
        response: { 200: CatalogueListSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return { items: await listCatalogueEvents(db, workspace.id, request.query) };
    },
  );

  app.get(
    '/workspaces/:workspace/catalogue/events/:type',
    {
      config: { permission: 'catalogue.read' },
      schema: docs('A catalogue event without a name (identify, group, alias, unnamed page/screen) with its properties', {
        params: CatalogueTypeParams,
        response: { 200: CatalogueEventDetailSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return getCatalogueEvent(db, workspace.id, request.params.type, '');
    },
  );

  app.get(
    '/workspaces/:workspace/catalogue/events/:type/:name',
    {
      config: { permission: 'catalogue.read' },
      schema: docs('A catalogue event with every property seen on it and the JSON types observed', {
        params: CatalogueEventParams,
        response: { 200: CatalogueEventDetailSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return getCatalogueEvent(db, workspace.id, request.params.type, request.params.name);
    },
  );
};
