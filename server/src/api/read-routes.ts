import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CatalogueEventDetailSchema, CatalogueListQuerySchema, CatalogueListSchema, EventTypeSchema } from '../catalogue/schemas.ts';
import { getCatalogueEvent, listCatalogueEvents } from '../catalogue/store.ts';
import { getQuarantineItem, listQuarantine, QuarantineDetailSchema, QuarantineListQuerySchema, QuarantineListSchema } from '../ingest/quarantine.ts';
import { EventListQuerySchema, EventListSchema, listRecentEvents } from '../ingest/recent-events.ts';
import type { Db } from '../storage/database.ts';
import type { ResolvedKey } from '../workspaces/store.ts';
import { requireServerKey, type KeyResolver } from './auth.ts';
import { ErrorResponseSchema } from './error-schema.ts';
import { strictValidatorCompiler } from './validation.ts';

export interface ReadOptions {
  db: Db;
  keys: KeyResolver;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The server key of a read request; set by the read API's auth hook. */
    serverKey?: ResolvedKey;
  }
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['read'], security: [{ bearer: [] }], ...schema });

/**
 * The read API for a workspace's server key: recent events, the event catalogue and the
 * quarantine. The workspace always comes from the key, never from the request.
 */
export const readRoutes: FastifyPluginAsyncTypebox<ReadOptions> = async (app, options) => {
  const { db, keys } = options;

  app.setValidatorCompiler(strictValidatorCompiler);
  app.decorateRequest('serverKey', undefined);
  app.addHook('onRequest', async (request) => {
    request.serverKey = await requireServerKey(keys, request);
  });
  const workspaceOf = (request: { serverKey?: ResolvedKey }): string => request.serverKey!.workspaceId;

  app.get(
    '/v1/events',
    {
      config: { permission: 'events.read' },
      schema: docs('Recent events of the key\'s workspace, newest first (watch events land)', {
        querystring: EventListQuerySchema,
        response: { 200: EventListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => listRecentEvents(db, workspaceOf(request), request.query),
  );

  app.get(
    '/v1/catalogue/events',
    {
      config: { permission: 'catalogue.read' },
      schema: docs('Events the workspace has sent, most frequent first', {
        querystring: CatalogueListQuerySchema,
        response: { 200: CatalogueListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => ({ items: await listCatalogueEvents(db, workspaceOf(request), request.query) }),
  );

  app.get(
    '/v1/catalogue/events/:type',
    {
      config: { permission: 'catalogue.read' },
      schema: docs('A catalogue event without a name (identify, group, alias, unnamed page/screen) with its properties', {
        params: Type.Object({ type: EventTypeSchema }),
        response: { 200: CatalogueEventDetailSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => getCatalogueEvent(db, workspaceOf(request), request.params.type, ''),
  );

  app.get(
    '/v1/catalogue/events/:type/:name',
    {
      config: { permission: 'catalogue.read' },
      schema: docs('A catalogue event with every property seen on it and the JSON types observed', {
        params: Type.Object({ type: EventTypeSchema, name: Type.String() }),
        response: { 200: CatalogueEventDetailSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => getCatalogueEvent(db, workspaceOf(request), request.params.type, request.params.name),
  );

  app.get(
    '/v1/quarantine',
    {
      config: { permission: 'quarantine.read' },
      schema: docs('Items of this workspace that failed validation, newest first (why did my event not land?)', {
        querystring: QuarantineListQuerySchema,
        response: { 200: QuarantineListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => listQuarantine(db, workspaceOf(request), request.query),
  );

  app.get(
    '/v1/quarantine/:id',
    {
      config: { permission: 'quarantine.read' },
      schema: docs('One quarantined item with its payload', {
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: QuarantineDetailSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => getQuarantineItem(db, workspaceOf(request), request.params.id),
  );
};
