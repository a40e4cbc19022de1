import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { Readable } from 'node:stream';
import { AuditEntrySchema, AuditQuerySchema, searchAudit, verifyAuditChain, type AuditQuery } from './audit.ts';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['audit'], ...schema });
const AuditPageSchema = Type.Object({ items: Type.Array(AuditEntrySchema), nextBefore: Type.Union([Type.Integer(), Type.Null()]) });
const VerifySchema = Type.Object({
  ok: Type.Boolean(),
  entries: Type.Integer(),
  broken: Type.Optional(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
});

const AuditExportQuerySchema = Type.Omit(AuditQuerySchema, ['before', 'limit']);

/** Every matching entry, newest first, one JSON object a line, read a page at a time. */
function exportLines(db: Db, workspaceId: string | null, query: Omit<AuditQuery, 'before' | 'limit'>): Readable {
  async function* lines() {
    let before: number | undefined;
    for (;;) {
      const page = await searchAudit(db, workspaceId, { ...query, before, limit: 1000 });
      if (page.items.length > 0) yield page.items.map((entry) => `${JSON.stringify(entry)}\n`).join('');
      if (page.nextBefore === null) return;
      before = page.nextBefore;
    }
  }
  return Readable.from(lines());
}

const EXPORT_TYPE = 'application/x-ndjson; charset=utf-8';

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
    '/v1/audit/export',
    {
      config: { permission: 'audit.read', audit: 'always' },
      schema: docs("Export the workspace's audit log (same filters), newest first, as NDJSON", { querystring: AuditExportQuerySchema, produces: ['application/x-ndjson'] }),
    },
    async (request, reply) => reply.type(EXPORT_TYPE).header('content-disposition', 'attachment; filename="audit.ndjson"').send(exportLines(db, request.access!.workspaceId!, request.query)),
  );

  app.get(
    '/admin/audit/export',
    {
      config: { permission: 'audit.list', audit: 'always' },
      schema: docs('Export the whole audit log (same filters), newest first, as NDJSON', { querystring: AuditExportQuerySchema, produces: ['application/x-ndjson'] }),
    },
    async (request, reply) => reply.type(EXPORT_TYPE).header('content-disposition', 'attachment; filename="audit.ndjson"').send(exportLines(db, null, request.query)),
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
