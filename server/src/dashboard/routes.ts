import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { loadOverview, loadSegmentTrends, overviewRange } from './overview.ts';
import { OverviewQuerySchema, OverviewSchema, SegmentTrendsQuerySchema, SegmentTrendsSchema } from './schemas.ts';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));

/** `GET /v1/overview`: the dashboard's first page in one request (server key). */
export const overviewRoutes: FastifyPluginAsyncTypebox<{ db: Db; keys: KeyResolver }> = async (app, options) => {
  const { db, keys } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  app.get(
    '/v1/overview',
    {
      config: { permission: 'analytics.read' },
      schema: {
        summary: 'Events per day, active/new/identified profiles and the largest segments, for a time range',
        tags: ['dashboard'],
        security: [{ bearer: [] }],
        querystring: OverviewQuerySchema,
        response: { 200: OverviewSchema, ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const { workspaceId } = await requireServerKey(keys, request);
      return loadOverview(db, workspaceId, overviewRange(request.query.from, request.query.to));
    },
  );

  app.get(
    '/v1/overview/segment-trends',
    {
      config: { permission: 'segments.read' },
      schema: {
        summary: 'Entries and exits per day of the segments (or one), with their size now, for trends and membership history',
        tags: ['dashboard'],
        security: [{ bearer: [] }],
        querystring: SegmentTrendsQuerySchema,
        response: { 200: SegmentTrendsSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { workspaceId } = await requireServerKey(keys, request);
      return loadSegmentTrends(db, workspaceId, overviewRange(request.query.from, request.query.to), request.query.key);
    },
  );
};
