import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireAdmin, requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { piiCodec, withPiiCodec } from '../privacy/pii-codec.ts';
import { unbindIdentifier, unmergeIdentifier } from '../identity/unmerge.ts';
import type { Db } from '../storage/database.ts';
import { getWorkspace } from '../workspaces/store.ts';
import { getIdentitySettings, getIdentityStats, putIdentitySettings } from './identity-admin.ts';
import { getIdentityGraph, getProfile, listProfileEvents, locateProfile, searchProfiles } from './queries.ts';
import { normalizeForLookup, parseTraitFilters } from './reference.ts';
import {
  IdentityGraphSchema,
  IdentitySettingsBodySchema,
  IdentitySettingsViewSchema,
  IdentityStatsSchema,
  ProfileQuerySchema,
  ProfileRefParams,
  ProfileSchema,
  SearchQuerySchema,
  SearchResultSchema,
  TimelineQuerySchema,
  TimelineSchema,
  UnbindBodySchema,
  UnbindResultSchema,
  UnmergeBodySchema,
  UnmergeResultSchema,
} from './schemas.ts';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['profiles'], security: [{ bearer: [] }], ...schema });

const IDENTIFIER_FIELDS = { type: 'identifier.type', value: 'identifier.value' };
const SEARCH_PARAMETERS: ReadonlySet<string> = new Set(Object.keys(SearchQuerySchema.properties));

/**
 * The single customer view for a workspace's server key: a profile by id or identifier, its
 * timeline, its explainable identity graph, search, and unmerge/unbind. The workspace always
 * comes from the key, so a key never reaches another workspace's profiles, even by id.
 */
export const profileRoutes: FastifyPluginAsyncTypebox<{ db: Db; keys: KeyResolver }> = async (app, options) => {
  const { db, keys } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.get(
    '/v1/profiles',
    {
      config: { permission: 'profiles.read' },
      schema: docs('Search live profiles by identifier prefix (identifier=, type=) and trait equality (trait.<key>=<value>)', {
        querystring: SearchQuerySchema,
        response: { 200: SearchResultSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const traits = parseTraitFilters(request.query, SEARCH_PARAMETERS);
      return searchProfiles(db, workspaceId, request.query, traits);
    },
  );

  app.get(
    '/v1/profiles/:profile',
    {
      config: { permission: 'profiles.read' },
      schema: docs('A profile by id or <type>:<value>: traits, identifiers, latest events', {
        params: ProfileRefParams,
        querystring: ProfileQuerySchema,
        response: { 200: ProfileSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const located = await locateProfile(db, workspaceId, request.params.profile);
      return getProfile(db, workspaceId, located, request.query);
    },
  );

  app.get(
    '/v1/profiles/:profile/events',
    {
      config: { permission: 'profiles.read' },
      schema: docs('A profile\'s timeline, newest first, filtered and cursor-paginated', {
        params: ProfileRefParams,
        querystring: TimelineQuerySchema,
        response: { 200: TimelineSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const { profileId } = await locateProfile(db, workspaceId, request.params.profile);
      return { profileId, ...(await listProfileEvents(db, workspaceId, profileId, request.query)) };
    },
  );

  app.get(
    '/v1/profiles/:profile/identity',
    {
      config: { permission: 'profiles.read' },
      schema: docs('Why this is one person: identifiers (live and ended) with their sources, merges, splits and refusals', {
        params: ProfileRefParams,
        response: { 200: IdentityGraphSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return getIdentityGraph(db, workspaceId, await locateProfile(db, workspaceId, request.params.profile));
    },
  );

  app.post(
    '/v1/profiles/:profile/unmerge',
    {
      config: { permission: 'profiles.write' },
      schema: docs('Split off an identifier, with what came only through it, into a new profile (events and traits follow)', {
        params: ProfileRefParams,
        body: UnmergeBodySchema,
        response: { 200: UnmergeResultSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const { profileId } = await locateProfile(db, workspaceId, request.params.profile);
      const { config } = await loadWorkspaceIdentity(db, workspaceId);
      const { type, value } = request.body.identifier;
      // PII identifiers are stored as keyed-hash tokens: encoded the same way (privacy/pii-codec.ts).
      const pii = withPiiCodec(config, await piiCodec(db, workspaceId));
      return unmergeIdentifier(db, workspaceId, profileId, normalizeForLookup(pii, type, value, IDENTIFIER_FIELDS));
    },
  );

  app.post(
    '/v1/profiles/:profile/unbind',
    {
      config: { permission: 'profiles.write' },
      schema: docs('End an identifier\'s link to the profile: later events with it no longer join, earlier history stays', {
        params: ProfileRefParams,
        body: UnbindBodySchema,
        response: { 200: UnbindResultSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const { profileId } = await locateProfile(db, workspaceId, request.params.profile);
      const { config } = await loadWorkspaceIdentity(db, workspaceId);
      const { type, value } = request.body.identifier;
      const identifier = normalizeForLookup(withPiiCodec(config, await piiCodec(db, workspaceId)), type, value, IDENTIFIER_FIELDS);
      const result = await unbindIdentifier(db, workspaceId, profileId, identifier, request.body.reason);
      return { ...result, unboundAt: result.unboundAt.toISOString() };
    },
  );
};

const WorkspaceParams = Type.Object({ workspace: Type.String({ minLength: 1, description: 'Workspace id or slug' }) });
const adminDocs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['identity'], security: [{ bearer: [] }], ...schema });

/** `/admin/workspaces/:workspace/identity-settings` and `…/identity/stats`, for the admin token. */
export const profileAdminRoutes: FastifyPluginAsyncTypebox<{ db: Db; verifyAdmin: (token: string) => boolean }> = async (app, options) => {
  const { db } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  app.addHook('onRequest', async (request) => requireAdmin(options.verifyAdmin, request));

  app.get(
    '/workspaces/:workspace/identity-settings',
    {
      config: { permission: 'identity.read' },
      schema: adminDocs('Identity settings (identifier types, limits, blocked values, trait strategies) and what they add up to', {
        params: WorkspaceParams,
        response: { 200: IdentitySettingsViewSchema, ...errors(401, 404) },
      }),
    },
    async (request) => getIdentitySettings(db, (await getWorkspace(db, request.params.workspace)).id),
  );

  app.put(
    '/workspaces/:workspace/identity-settings',
    {
      config: { permission: 'identity.write' },
      schema: adminDocs('Replace the identity settings and/or trait strategies; applies to events resolved from now on', {
        params: WorkspaceParams,
        body: IdentitySettingsBodySchema,
        response: { 200: IdentitySettingsViewSchema, ...errors(400, 401, 404) },
      }),
    },
    async (request) => putIdentitySettings(db, (await getWorkspace(db, request.params.workspace)).id, request.body),
  );

  app.get(
    '/workspaces/:workspace/identity/stats',
    {
      config: { permission: 'identity.read' },
      schema: adminDocs('Profiles, live identifiers by type, merges, refusals by reason and ignored identifiers', {
        params: WorkspaceParams,
        response: { 200: IdentityStatsSchema, ...errors(401, 404) },
      }),
    },
    async (request) => getIdentityStats(db, (await getWorkspace(db, request.params.workspace)).id),
  );
};
