import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../../api/auth.ts';
import { ErrorResponseSchema } from '../../api/error-schema.ts';
import { strictValidatorCompiler } from '../../api/validation.ts';
import type { Db } from '../../storage/database.ts';
import { EnabledTagSchema, EnableTagSchema, LibraryQuerySchema, LibrarySchema, TagKeyParams, TagListQuerySchema, TagListSchema, TagSchema } from './schemas.ts';
import { disableTag, enableTag, listTags, localizedLibrary, toTagView } from './switch.ts';

export interface TagRoutesOptions {
  db: Db;
  keys: KeyResolver;
  /** The clock a new tag is first computed at; injectable so tests control time. */
  now: () => Date;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['tags'], security: [{ bearer: [] }], ...schema });

/**
 * Behaviour tags for a workspace's server key: the library of ready tags, switching one on (a
 * realtime tag segment, computed at once) and off, and the tags that are on. The workspace always
 * comes from the key. Profiles show their tags in GET /v1/profiles/{ref}.
 */
export const tagRoutes: FastifyPluginAsyncTypebox<TagRoutesOptions> = async (app, options) => {
  const { db, keys, now } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.get(
    '/v1/tags/library',
    {
      config: { permission: 'tags.read' },
      schema: docs('The ready tags that can be switched on, with their parameters, in English or Chinese', {
        querystring: LibraryQuerySchema,
        response: { 200: LibrarySchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      await workspaceOf(request);
      const locale = request.query.locale ?? 'en';
      return { locale, items: localizedLibrary(locale) };
    },
  );

  app.post(
    '/v1/tags',
    {
      config: { permission: 'tags.write' },
      schema: docs('Switch a library tag on: a realtime tag segment, computed at once and kept fresh as data arrives', {
        body: EnableTagSchema,
        response: { 201: EnabledTagSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const enabled = await enableTag(db, await workspaceOf(request), request.body, now());
      return reply.code(201).send({ ...toTagView(enabled.segment), parameters: enabled.parameters, restored: enabled.restored, warnings: enabled.warnings });
    },
  );

  app.get(
    '/v1/tags',
    {
      config: { permission: 'tags.read' },
      schema: docs('The tags that are on (active or paused), newest first, with member counts', {
        querystring: TagListQuerySchema,
        response: { 200: TagListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => listTags(db, await workspaceOf(request), request.query),
  );

  app.delete(
    '/v1/tags/:key',
    {
      config: { permission: 'tags.write' },
      schema: docs('Switch a tag off (its segment is archived; refused while other segments use it)', {
        params: TagKeyParams,
        response: { 200: TagSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => toTagView(await disableTag(db, await workspaceOf(request), request.params.key)),
  );
};
