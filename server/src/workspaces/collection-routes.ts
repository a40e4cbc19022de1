import { Type, type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { createHash } from 'node:crypto';
import { presentedWriteKey, requireAdmin, requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { collectionSettingsOf, CollectionSettingsSchema, getCollectionSettings, updateCollectionSettings, UpdateCollectionSettingsSchema } from './collection-settings.ts';
import { getWorkspace } from './store.ts';

export interface CollectionSettingsRoutesOptions {
  db: Db;
  keys: KeyResolver;
  verifyAdmin: (token: string) => boolean;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const WorkspaceParams = Type.Object({ workspace: Type.String({ minLength: 1, description: 'Workspace id or slug' }) });
const SdkSettingsQuery = Type.Object(
  { writeKey: Type.Optional(Type.String({ minLength: 1, description: 'The write key; or HTTP Basic / X-Write-Key as on the collection API' })) },
  { additionalProperties: false },
);

/** How long browsers (and CDNs: the write key is in the URL) may reuse the SDK settings answer. */
export const SDK_SETTINGS_MAX_AGE_SECONDS = 60;

/**
 * A workspace's collection settings (the consent requirement): read and changed by the instance
 * admin (`/admin/workspaces/:workspace/collection-settings`) or the workspace's server key
 * (`/v1/workspace/collection-settings`), and read by the SDKs with the public write key
 * (`GET /v1/sdk/settings`) so they hold events on the device until consent is given.
 */
export const collectionSettingsRoutes: FastifyPluginAsyncTypebox<CollectionSettingsRoutesOptions> = async (app, options) => {
  const { db, keys } = options;

  await app.register(async (plugin) => {
    const admin = plugin.withTypeProvider<TypeBoxTypeProvider>();
    admin.setValidatorCompiler(strictValidatorCompiler);
    admin.addHook('onRequest', async (request) => requireAdmin(options.verifyAdmin, request));
    const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['admin'], security: [{ bearer: [] }], ...schema });
    admin.get(
      '/admin/workspaces/:workspace/collection-settings',
      {
        config: { permission: 'workspaces.read' },
        schema: docs("A workspace's collection settings", { params: WorkspaceParams, response: { 200: CollectionSettingsSchema, ...errors(401, 404) } }),
      },
      async (request) => getCollectionSettings(db, (await getWorkspace(db, request.params.workspace)).id),
    );
    admin.patch(
      '/admin/workspaces/:workspace/collection-settings',
      {
        config: { permission: 'workspaces.write' },
        schema: docs("Change a workspace's collection settings (consent requirement); absent fields keep their value", {
          params: WorkspaceParams,
          body: UpdateCollectionSettingsSchema,
          response: { 200: CollectionSettingsSchema, ...errors(400, 401, 404) },
        }),
      },
      async (request) => {
        const workspace = await getWorkspace(db, request.params.workspace);
        const updated = await updateCollectionSettings(db, workspace.id, request.body);
        keys.invalidate(); // ingestion reads the settings with the key; apply them at once
        return updated;
      },
    );
  });

  await app.register(async (plugin) => {
    const server = plugin.withTypeProvider<TypeBoxTypeProvider>();
    server.setValidatorCompiler(strictValidatorCompiler);
    const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['workspace'], security: [{ bearer: [] }], ...schema });
    server.get(
      '/v1/workspace/collection-settings',
      {
        config: { permission: 'workspaces.read' },
        schema: docs("This workspace's collection settings", { response: { 200: CollectionSettingsSchema, ...errors(401, 403) } }),
      },
      async (request) => getCollectionSettings(db, (await requireServerKey(keys, request)).workspaceId),
    );
    server.patch(
      '/v1/workspace/collection-settings',
      {
        config: { permission: 'workspaces.write' },
        schema: docs("Change this workspace's collection settings (consent requirement); absent fields keep their value", {
          body: UpdateCollectionSettingsSchema,
          response: { 200: CollectionSettingsSchema, ...errors(400, 401, 403) },
        }),
      },
      async (request) => {
        const { workspaceId } = await requireServerKey(keys, request);
        const updated = await updateCollectionSettings(db, workspaceId, request.body);
        keys.invalidate();
        return updated;
      },
    );
  });

  await app.register(async (plugin) => {
    const sdk = plugin.withTypeProvider<TypeBoxTypeProvider>();
    sdk.setValidatorCompiler(strictValidatorCompiler);
    sdk.get(
      '/v1/sdk/settings',
      {
        // A write key, possibly as ?writeKey= (browsers fetch it without custom headers).
        config: { permission: 'visitor.read', credentialsInQuery: true },
        schema: {
          summary: 'What the SDKs must know before sending: whether this workspace requires consent, and for which categories',
          tags: ['collection'],
          security: [{ basicAuth: [] }, { writeKey: [] }],
          querystring: SdkSettingsQuery,
          response: { 200: CollectionSettingsSchema, 304: Type.Null(), ...errors(400, 401) },
        },
      },
      async (request, reply) => {
        const key = presentedWriteKey(request, request.query);
        if (!key) throw new ApiError(401, 'unauthorized', 'A write key is required: ?writeKey=, HTTP Basic username or X-Write-Key header');
        const resolved = await keys.resolve(key);
        if (!resolved || resolved.kind !== 'write') throw new ApiError(401, 'unauthorized', 'Unknown or disabled write key');
        const settings = await collectionSettingsOf(db, resolved);
        const etag = `"${createHash('sha256').update(JSON.stringify(settings)).digest('base64url').slice(0, 16)}"`;
        reply
          .header('cache-control', `public, max-age=${SDK_SETTINGS_MAX_AGE_SECONDS}`)
          .header('vary', 'Authorization, X-Write-Key')
          // Public like the SDK itself: any site embedding the SDK reads it. The SDK's GET carries the
          // key in the URL and no custom header, so browsers send it without a preflight.
          .header('access-control-allow-origin', '*')
          .header('etag', etag);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send(null);
        return settings;
      },
    );
  });
};
