import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { AuditEntrySchema, AuditQuerySchema, searchAudit, verifyAuditChain } from './audit.ts';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['audit'], ...schema });
const AuditPageSchema = Type.Object({ items: Type.Array(AuditEntrySchema), nextBefore: Type.Union([Type.Integer(), Type.Null()]) });
const VerifySchema = Type.Object({
  ok: Type.Boolean(),
  entries: Type.Integer(),
  broken: Type.Optional(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
});

/** The audit log: a workspace's entries for its auditors, the whole log and its verification for the instance. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.setValidatorCompiler(strictValidatorCompiler);

  app.get(
    '/v1/audit',
    {
      config: { permission: 'audit.read', audit: 'never' },
      schema: docs("The workspace's audit log, newest first, filtered by actor, action, outcome and time", {
        querystring: AuditQuerySchema,
        response: { 200: AuditPageSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => searchAudit(db, request.access!.workspaceId!, request.query),
  );

  app.get(
    '/admin/audit',
    {
      config: { permission: 'audit.list', audit: 'never' },
      schema: docs('The whole audit log (every workspace and instance actions), newest first', {
        querystring: AuditQuerySchema,
        response: { 200: AuditPageSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => searchAudit(db, null, request.query),
  );

  app.get(
    '/admin/audit/verify',
    {
      config: { permission: 'audit.verify', audit: 'never' },
      schema: docs('Recompute the hash chain over the whole log; names the first entry that was changed, removed or inserted', {
        response: { 200: VerifySchema, ...errors(401, 403) },
      }),
    },
    async () => verifyAuditChain(db),
  );
};
