import cors from '@fastify/cors';
import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { presentedWriteKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { normalizeForLookup } from '../profiles/reference.ts';
import type { Db, Queryable } from '../storage/database.ts';

export interface ClientSegmentRoutesOptions {
  db: Db;
  keys: KeyResolver;
}

const VisitorIdSchema = Type.String({ minLength: 1, maxLength: 200 });
export const VisitorSegmentsQuerySchema = Type.Object(
  {
    anonymousId: Type.Optional(VisitorIdSchema),
    userId: Type.Optional(VisitorIdSchema),
  },
  { additionalProperties: false },
);
export const VisitorSegmentsSchema = Type.Object({
  segments: Type.Array(Type.String(), { description: 'Keys of the client-visible segments the visitor is in now, sorted' }),
});

/**
 * The live profile an id of the visitor is linked to, trying the user id first (the visitor may
 * have logged in on this device after their anonymous id was merged elsewhere), or null.
 */
async function visitorProfile(db: Queryable, workspaceId: string, ids: Array<{ type: string; raw: string; field: string }>): Promise<string | null> {
  const { config } = await loadWorkspaceIdentity(db, workspaceId);
  for (const id of ids) {
    const identifier = normalizeForLookup(config, id.type, id.raw, { type: id.field, value: id.field });
    const { rows } = await db.query<{ profile_id: string }>(
      `select pi.profile_id from profile_identifiers pi join profiles p on p.workspace_id = pi.workspace_id and p.id = pi.profile_id
        where pi.workspace_id = $1 and pi.type = $2 and pi.value = $3 and pi.unbound_at is null and p.merged_into is null`,
      [workspaceId, identifier.type, identifier.value],
    );
    if (rows[0]) return rows[0].profile_id;
  }
  return null;
}

/** Keys of the client-visible, live segments a profile is in now. */
export async function clientVisibleSegmentKeys(db: Queryable, workspaceId: string, profileId: string): Promise<string[]> {
  const { rows } = await db.query<{ key: string }>(
    `select s.key from segment_memberships m
       join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
      where m.workspace_id = $1 and m.profile_id = $2 and s.client_visible and s.status <> 'archived'
      order by s.key`,
    [workspaceId, profileId],
  );
  return rows.map((row) => row.key);
}

/**
 * What the SDK's personalisation helpers may read about the current visitor with a (public)
 * write key: only the keys of segments the workspace marked `clientVisible`. Never names,
 * traits, identifiers or profile ids, and an unknown visitor gets the same empty answer as one
 * in no visible segment, so the endpoint does not tell whether an id exists.
 */
export const clientSegmentRoutes: FastifyPluginAsyncTypebox<ClientSegmentRoutesOptions> = async (app, options) => {
  const { db, keys } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  // Called from any site that embeds the SDK, like the collection API; answers are per visitor.
  await app.register(cors, { origin: true, methods: ['GET', 'OPTIONS'], maxAge: 86_400 });

  async function workspaceOfWriteKey(request: FastifyRequest): Promise<string> {
    const key = presentedWriteKey(request, undefined);
    if (!key) throw new ApiError(401, 'unauthorized', 'A write key is required: HTTP Basic username or X-Write-Key header');
    const resolved = await keys.resolve(key);
    if (!resolved || resolved.kind !== 'write') throw new ApiError(401, 'unauthorized', 'Unknown or disabled write key');
    return resolved.workspaceId;
  }

  app.get(
    '/segments',
    {
      config: { permission: 'visitor.read' },
      schema: {
        summary: "The current visitor's client-visible segment keys, for personalisation in the browser or mini-program",
        description:
          'Authenticated with a write key, which is public: it answers only keys of segments marked clientVisible, and the same empty list for an unknown visitor. Give anonymousId and/or userId (userId is looked up first).',
        tags: ['segments'],
        security: [{ basicAuth: [] }, { writeKey: [] }],
        querystring: VisitorSegmentsQuerySchema,
        response: { 200: VisitorSegmentsSchema, 400: ErrorResponseSchema, 401: ErrorResponseSchema },
      },
    },
    async (request, reply) => {
      const workspaceId = await workspaceOfWriteKey(request);
      const { anonymousId, userId } = request.query;
      if (anonymousId === undefined && userId === undefined) {
        throw new ApiError(400, 'invalid_request', 'Give the visitor\'s anonymousId or userId', 'anonymousId');
      }
      const ids = [
        ...(userId === undefined ? [] : [{ type: 'user_id', raw: userId, field: 'userId' }]),
        ...(anonymousId === undefined ? [] : [{ type: 'anonymous_id', raw: anonymousId, field: 'anonymousId' }]),
      ];
      const profileId = await visitorProfile(db, workspaceId, ids);
      // Per-visitor answers must not be kept by shared caches or replayed to another visitor.
      reply.header('cache-control', 'private, no-store');
      return { segments: profileId ? await clientVisibleSegmentKeys(db, workspaceId, profileId) : [] };
    },
  );
};
