import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requireAdmin } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { getWorkspace } from '../workspaces/store.ts';
import { decideMatchCandidate } from './matching-job.ts';
import { mergeProfiles } from './merge.ts';

const WorkspaceParams = Type.Object({ workspace: Type.String({ minLength: 1, description: 'Workspace id or slug' }) });
const CandidateParams = Type.Composite([WorkspaceParams, Type.Object({ id: Type.String({ format: 'uuid' }) })]);
const Thresholds = Type.Object(
  {
    autoMerge: Type.Number({ minimum: 0, maximum: 1, description: 'Match probability at or above which pairs merge without review' }),
    review: Type.Number({ minimum: 0, maximum: 1, description: 'Match probability at or above which pairs wait for review' }),
  },
  { additionalProperties: false },
);
const RunBody = Type.Object(
  {
    thresholds: Type.Optional(Thresholds),
    sourceKinds: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Profiles fed by sources of these kinds' })),
  },
  { additionalProperties: false },
);
const CandidateSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  profileA: Type.String({ format: 'uuid' }),
  profileB: Type.String({ format: 'uuid' }),
  probability: Type.Number(),
  weight: Type.Number({ description: 'log2 likelihood ratio of the evidence' }),
  levels: Type.Record(Type.String(), Type.Union([Type.Integer(), Type.Null()]), { description: 'Agreement level per compared field' }),
  status: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  mergeId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});
const ListQuery = Type.Object({
  status: Type.Optional(Type.Union(['pending', 'approved', 'rejected', 'auto_merged', 'refused'].map((s) => Type.Literal(s)))),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
});
const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['identity'], security: [{ bearer: [] }], ...schema });

/** `/admin/workspaces/:workspace/identity/…`: probabilistic matching runs, the review queue, operator merges. */
export const identityAdminRoutes: FastifyPluginAsyncTypebox<{ db: Db; verifyAdmin: (token: string) => boolean }> = async (app, options) => {
  const { db } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  app.addHook('onRequest', async (request) => requireAdmin(options.verifyAdmin, request));

  app.post(
    '/workspaces/:workspace/identity/matching/runs',
    {
      config: { permission: 'identity.write' },
      schema: docs('Queue a probabilistic matching run (the worker runs it)', {
        params: WorkspaceParams,
        body: RunBody,
        response: { 202: Type.Object({ jobId: Type.String() }), ...errors(400, 401, 404) },
      }),
    },
    async (request, reply) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const { rows } = await db.query<{ id: string }>(
        `select id::text from graphile_worker.add_job('identity.match', $1::json, job_key => $2, max_attempts => 3)`,
        [JSON.stringify({ workspaceId: workspace.id, ...request.body }), `identity.match:${workspace.id}`],
      );
      return reply.code(202).send({ jobId: rows[0]!.id });
    },
  );

  app.get(
    '/workspaces/:workspace/identity/match-candidates',
    {
      config: { permission: 'identity.read' },
      schema: docs('Pairs the matcher proposed, most likely first', {
        params: WorkspaceParams,
        querystring: ListQuery,
        response: { 200: Type.Object({ items: Type.Array(CandidateSchema) }), ...errors(400, 401, 404) },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      const { rows } = await db.query(
        `select id, profile_a, profile_b, probability, weight, levels, status, reason, merge_id, created_at
           from match_candidates where workspace_id = $1 and ($2::text is null or status = $2)
          order by probability desc, id limit $3`,
        [workspace.id, request.query.status ?? null, request.query.limit ?? 100],
      );
      return {
        items: rows.map((row) => ({
          id: row.id,
          profileA: row.profile_a,
          profileB: row.profile_b,
          probability: row.probability,
          weight: row.weight,
          levels: row.levels,
          status: row.status,
          reason: row.reason,
          mergeId: row.merge_id,
          createdAt: row.created_at.toISOString(),
        })),
      };
    },
  );

  for (const decision of ['approve', 'reject'] as const) {
    app.post(
      `/workspaces/:workspace/identity/match-candidates/:id/${decision}`,
      {
        config: { permission: 'identity.write' },
        schema: docs(decision === 'approve' ? 'Approve a pending pair: merge the two profiles' : 'Reject a pending pair: never proposed again', {
          params: CandidateParams,
          response: {
            200: Type.Object({ id: Type.String(), status: Type.String(), mergeId: Type.Union([Type.String(), Type.Null()]) }),
            ...errors(401, 404, 409),
          },
        }),
      },
      async (request) => {
        const workspace = await getWorkspace(db, request.params.workspace);
        return decideMatchCandidate(db, workspace.id, request.params.id, decision);
      },
    );
  }

  app.post(
    '/workspaces/:workspace/identity/merges',
    {
      config: { permission: 'identity.write' },
      schema: docs('Merge profiles by hand (same limits as automatic merges; logged as manual, reversible by unmerge)', {
        params: WorkspaceParams,
        body: Type.Object({ profileIds: Type.Array(Type.String({ format: 'uuid' }), { minItems: 2, maxItems: 20 }) }, { additionalProperties: false }),
        response: {
          200: Type.Object({ survivorId: Type.String(), absorbedIds: Type.Array(Type.String()), mergeId: Type.Union([Type.String(), Type.Null()]) }),
          ...errors(400, 401, 404, 409),
        },
      }),
    },
    async (request) => {
      const workspace = await getWorkspace(db, request.params.workspace);
      return mergeProfiles(db, workspace.id, request.body.profileIds, { kind: 'manual' });
    },
  );
};
