import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { runFunnel } from '../analytics/funnel.ts';
import { createSegment, setListMembers } from '../segments/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { DropOffSegmentBodySchema, DropOffSegmentResultSchema, MAX_DROP_OFF_MEMBERS, type DropOffSegmentBody } from './schemas.ts';

/*
 * "Save dropped profiles as a segment" from a funnel: the funnel's drop-off profiles (reached step
 * N, not N + 1) become the members of a new static list segment, in one request, so the page
 * never carries thousands of profile ids back and forth.
 */

/** Runs the funnel's drop-off query, then creates the static segment and sets its members. */
export async function saveDropOffSegment(db: Db, workspaceId: string, body: DropOffSegmentBody, now: Date): Promise<Static<typeof DropOffSegmentResultSchema>> {
  if (body.step >= body.funnel.steps.length) {
    throw new ApiError(400, 'invalid_request', `Profiles can drop off after steps 1–${body.funnel.steps.length - 1}`, 'step');
  }
  const dropOff = { step: body.step, limit: MAX_DROP_OFF_MEMBERS, ...(body.breakdownValue !== undefined ? { breakdownValue: body.breakdownValue } : {}) };
  const result = await runFunnel(db, workspaceId, { ...body.funnel, dropOff }, now);
  const profileIds = result.dropOff?.profileIds ?? [];
  const input = { key: body.segment.key, name: body.segment.name, kind: 'static' as const, ...(body.segment.description ? { description: body.segment.description } : {}) };
  await createSegment(db, workspaceId, input, now).catch((error: unknown) => {
    // The segment's fields are under `segment.` in this body.
    if (error instanceof ApiError && error.field) throw new ApiError(error.statusCode, error.code, error.message, `segment.${error.field}`, error.headers, error.details);
    throw error;
  });
  const applied = profileIds.length > 0 ? await setListMembers(db, workspaceId, body.segment.key, profileIds, 'add', now) : { memberCount: 0 };
  return {
    key: body.segment.key,
    name: body.segment.name,
    step: body.step,
    profiles: profileIds.length,
    memberCount: applied.memberCount,
    truncated: result.dropOff?.truncated ?? false,
  };
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));

export const dropOffSegmentRoutes: FastifyPluginAsyncTypebox<{ db: Db; keys: KeyResolver; now: () => Date }> = async (app, options) => {
  const { db, keys, now } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  app.post(
    '/v1/analytics/funnels/drop-off-segment',
    {
      config: { permission: 'segments.write' },
      schema: {
        summary: "Save a funnel step's drop-off profiles (reached the step, not the next) as a new static segment",
        tags: ['analytics'],
        security: [{ bearer: [] }],
        body: DropOffSegmentBodySchema,
        response: { 201: DropOffSegmentResultSchema, ...errors(400, 401, 403, 409, 503) },
      },
    },
    async (request, reply) => {
      const { workspaceId } = await requireServerKey(keys, request);
      return reply.code(201).send(await saveDropOffSegment(db, workspaceId, request.body, now()));
    },
  );
};
