import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { locateProfile } from '../profiles/queries.ts';
import { ProfileRefParams } from '../profiles/schemas.ts';
import type { Db, Queryable } from '../storage/database.ts';
import { archiveSegment, createSegment, refreshSegment, segmentWarnings, updateSegment, uploadSegmentMembers, type SavedSegment } from './lifecycle.ts';
import { previewSegment } from './preview.ts';
import {
  CreateSegmentSchema,
  ListUploadResultSchema,
  ListUploadSchema,
  MAX_LIST_IDENTIFIERS,
  MembersQuerySchema,
  MembersSchema,
  PreviewBodySchema,
  PreviewSchema,
  ProfileSegmentsQuerySchema,
  ProfileSegmentsSchema,
  RefreshResultSchema,
  SegmentKeyParams,
  SegmentListQuerySchema,
  SegmentListSchema,
  SegmentSchema,
  TransitionsQuerySchema,
  TransitionsSchema,
  UpdateSegmentSchema,
} from './schemas.ts';
import { getSegmentByKey, listMembers, listSegments, listTransitions, segmentsOfProfile, toSegmentView } from './store.ts';

export interface SegmentRoutesOptions {
  db: Db;
  keys: KeyResolver;
  /** The clock segments are evaluated at; injectable so tests control time. */
  now: () => Date;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['segments'], security: [{ bearer: [] }], ...schema });

// A list upload of MAX_LIST_IDENTIFIERS identifiers needs more than the server-wide 1 MiB.
const LIST_UPLOAD_BODY_LIMIT = 16 * 1024 * 1024;

const saved = (result: SavedSegment) => ({ ...toSegmentView(result.segment), warnings: result.warnings });

/** Profiles merged into `profileId` keep their own transitions; a profile filter includes them. */
async function profileAndAbsorbed(db: Queryable, workspaceId: string, profileId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>('select id from profiles where workspace_id = $1 and merged_into = $2', [workspaceId, profileId]);
  return [profileId, ...rows.map((row) => row.id)];
}

/**
 * Segments for a workspace's server key: define (AST or text), preview, compute, list members
 * and transitions, upload static lists, and ask which segments a profile is in. The workspace
 * always comes from the key.
 */
export const segmentRoutes: FastifyPluginAsyncTypebox<SegmentRoutesOptions> = async (app, options) => {
  const { db, keys, now } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.post(
    '/v1/segments',
    {
      config: { permission: 'segments.write' },
      schema: docs('Create a segment (realtime, periodic or static) from a definition or text; it is computed at once', {
        body: CreateSegmentSchema,
        response: { 201: SegmentSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      return reply.code(201).send(saved(await createSegment(db, workspaceId, request.body, now())));
    },
  );

  app.get(
    '/v1/segments',
    {
      config: { permission: 'segments.read' },
      schema: docs('Segments of the workspace, newest first', {
        querystring: SegmentListQuerySchema,
        response: { 200: SegmentListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      const page = await listSegments(db, await workspaceOf(request), request.query);
      return { items: page.items.map(toSegmentView), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/v1/segments/preview',
    {
      config: { permission: 'segments.preview' },
      schema: docs('Size and a sample of what a definition selects now, without saving it', {
        body: PreviewBodySchema,
        response: { 200: PreviewSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => previewSegment(db, await workspaceOf(request), request.body, now()),
  );

  app.get(
    '/v1/segments/:key',
    {
      config: { permission: 'segments.read' },
      schema: docs('A segment with its canonical text, state, member count and checker warnings', {
        params: SegmentKeyParams,
        response: { 200: SegmentSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const segment = await getSegmentByKey(db, await workspaceOf(request), request.params.key);
      return { ...toSegmentView(segment), warnings: await segmentWarnings(db, segment) };
    },
  );

  app.patch(
    '/v1/segments/:key',
    {
      config: { permission: 'segments.write' },
      schema: docs('Edit a segment; a new definition is computed at once and records only true transitions', {
        params: SegmentKeyParams,
        body: UpdateSegmentSchema,
        response: { 200: SegmentSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => saved(await updateSegment(db, await workspaceOf(request), request.params.key, request.body, now())),
  );

  app.delete(
    '/v1/segments/:key',
    {
      config: { permission: 'segments.write' },
      schema: docs('Archive a segment (refused while other segments use it); its key stays taken', {
        params: SegmentKeyParams,
        response: { 200: SegmentSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => toSegmentView(await archiveSegment(db, await workspaceOf(request), request.params.key)),
  );

  app.post(
    '/v1/segments/:key/refresh',
    {
      config: { permission: 'segments.write' },
      schema: docs('Compute a segment now (a static snapshot is taken again), then the segments that use it', {
        params: SegmentKeyParams,
        response: { 200: RefreshResultSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const result = await refreshSegment(db, await workspaceOf(request), request.params.key, now());
      return { segment: toSegmentView(result.segment), computed: result.computed };
    },
  );

  app.post(
    '/v1/segments/:key/members',
    {
      config: { permission: 'segments.write' },
      bodyLimit: LIST_UPLOAD_BODY_LIMIT,
      schema: docs(`Add, remove or replace the members of a static list segment by identifier (up to ${MAX_LIST_IDENTIFIERS} per request)`, {
        params: SegmentKeyParams,
        body: ListUploadSchema,
        response: { 200: ListUploadResultSchema, ...errors(400, 401, 403, 404, 409, 413) },
      }),
    },
    async (request) => uploadSegmentMembers(db, await workspaceOf(request), request.params.key, request.body, now()),
  );

  app.get(
    '/v1/segments/:key/members',
    {
      config: { permission: 'segments.read' },
      schema: docs('Current members by profile id, cursor-paginated', {
        params: SegmentKeyParams,
        querystring: MembersQuerySchema,
        response: { 200: MembersSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const segment = await getSegmentByKey(db, workspaceId, request.params.key);
      return listMembers(db, workspaceId, segment.id, request.query);
    },
  );

  app.get(
    '/v1/segments/:key/transitions',
    {
      config: { permission: 'segments.read' },
      schema: docs('Entries and exits in the order they were recorded, optionally of one profile', {
        params: SegmentKeyParams,
        querystring: TransitionsQuerySchema,
        response: { 200: TransitionsSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const segment = await getSegmentByKey(db, workspaceId, request.params.key);
      const { profile, ...page } = request.query;
      const profileIds = profile ? await profileAndAbsorbed(db, workspaceId, (await locateProfile(db, workspaceId, profile, 'profile')).profileId) : null;
      return listTransitions(db, workspaceId, segment.id, { ...page, profileIds });
    },
  );

  app.get(
    '/v1/profiles/:profile/segments',
    {
      config: { permission: 'profiles.read' },
      schema: docs('The segments and tags a profile is in now (an absorbed id answers for its survivor)', {
        params: ProfileRefParams,
        querystring: ProfileSegmentsQuerySchema,
        response: { 200: ProfileSegmentsSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const located = await locateProfile(db, workspaceId, request.params.profile);
      return {
        profileId: located.profileId,
        mergedFrom: located.mergedFrom,
        segments: await segmentsOfProfile(db, workspaceId, located.profileId, request.query.isTag),
      };
    },
  );
};
