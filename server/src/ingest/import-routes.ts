import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { getSource } from '../workspaces/store.ts';
import { ImportError } from './import/errors.ts';
import { apiFieldOf, ImportJobListSchema, ImportJobSchema, type ImportJobs } from './import/jobs.ts';
import { FILE_FORMATS } from './import/read.ts';
import { planImport } from './import/run.ts';

/** Largest upload accepted (the file is written to disk first, then imported). */
export const MAX_IMPORT_UPLOAD_BYTES = 1024 ** 3;
/** Imports of one workspace running at the same time on this server; more wait for one to end. */
export const MAX_RUNNING_IMPORTS = 2;

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['imports'], security: [{ bearer: [] }], ...schema });

export const ImportQuerySchema = Type.Object(
  {
    source: Type.String({ minLength: 1, description: 'Source id or name the rows belong to' }),
    fileName: Type.String({ minLength: 1, maxLength: 300, description: 'Original file name: the format is read from it (.csv, .ndjson, .jsonl, optionally .gz)' }),
    format: Type.Optional(Type.Union(FILE_FORMATS.map((format) => Type.Literal(format)))),
    type: Type.Optional(Type.Union([Type.Literal('identify'), Type.Literal('track')])),
    event: Type.Optional(Type.String({ maxLength: 200, description: 'Event name of every track row' })),
    eventColumn: Type.Optional(Type.String({ maxLength: 200 })),
    map: Type.Optional(Type.String({ maxLength: 10_000, description: 'target=Column[:type],… as `touchpoint import --map`' })),
    onlyMapped: Type.Optional(Type.Boolean()),
    timeZone: Type.Optional(Type.String({ maxLength: 64, description: 'IANA zone of naive date-times (default UTC)' })),
    dryRun: Type.Optional(Type.Boolean({ description: 'Validate every row and fill the rejects file, store nothing' })),
  },
  { additionalProperties: false },
);
const ImportParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

const UPLOAD_TYPES = ['text/csv', 'application/x-ndjson', 'application/jsonl', 'application/gzip', 'application/x-gzip', 'application/octet-stream', 'text/plain'];

/** Counts bytes as they pass and stops the upload past the limit. */
function sizeGuard(limit: number, counted: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      counted.bytes += chunk.length;
      if (counted.bytes > limit) done(new ApiError(413, 'payload_too_large', `An import upload may be at most ${limit} bytes; use touchpoint import for larger files`, 'file'));
      else done(null, chunk);
    },
  });
}

/**
 * `/v1/imports`: the dashboard's file import. The body is the file itself (CSV or NDJSON, gzip or
 * not); it is stored, then imported in the background by the CLI's code path (same mapping,
 * validation, storage and rejects file). Progress is polled; rejected rows download as NDJSON.
 */
export const importRoutes: FastifyPluginAsyncTypebox<{ db: Db; keys: KeyResolver; jobs: ImportJobs }> = async (app, options) => {
  const { db, keys, jobs } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  // The file arrives as a stream and goes to disk, never into memory.
  app.addContentTypeParser(UPLOAD_TYPES, (_request, payload, done) => done(null, payload));
  app.addHook('onClose', async () => jobs.close());

  app.post(
    '/v1/imports',
    {
      config: { permission: 'imports.write' },
      bodyLimit: MAX_IMPORT_UPLOAD_BYTES,
      schema: docs('Upload a CSV or NDJSON file (optionally gzip) and import it in the background; poll the job for progress', {
        querystring: ImportQuerySchema,
        response: { 202: ImportJobSchema, ...errors(400, 401, 403, 404, 409, 413, 415) },
      }),
    },
    async (request, reply) => {
      const workspaceId = (await requireServerKey(keys, request)).workspaceId;
      const query = request.query;
      const source = await getSource(db, workspaceId, query.source).catch(() => {
        throw new ApiError(404, 'not_found', `No source "${query.source}" in this workspace`, 'source');
      });
      if (source.status !== 'active') throw new ApiError(409, 'source_disabled', `Source "${source.name}" is disabled; enable it before importing`, 'source');
      if (jobs.list(workspaceId).filter((job) => job.status === 'running').length >= MAX_RUNNING_IMPORTS) {
        throw new ApiError(409, 'imports_running', `${MAX_RUNNING_IMPORTS} imports of this workspace are running; start another when one has ended`);
      }
      const body = request.body as Readable | undefined;
      if (!body || typeof (body as Readable).pipe !== 'function') {
        throw new ApiError(415, 'unsupported_media_type', `Send the file as the body with Content-Type ${UPLOAD_TYPES.slice(0, 3).join(', ')} or application/octet-stream`, 'file');
      }
      const upload = await jobs.uploadPath(query.fileName.toLowerCase().endsWith('.gz') ? 'upload.gz' : 'upload');
      let plan;
      try {
        plan = planImport({
          // The format comes from the original name; the stored file's name is ours.
          file: query.format ? upload.file : query.fileName,
          writeKey: '',
          format: query.format,
          type: query.type,
          event: query.event,
          eventColumn: query.eventColumn,
          map: query.map ? [query.map] : [],
          onlyMapped: query.onlyMapped,
          timeZone: query.timeZone,
          rejectsFile: `${upload.file}.rejects.ndjson`,
          dryRun: query.dryRun,
        });
      } catch (error) {
        body.resume();
        if (error instanceof ImportError) throw new ApiError(400, error.code, error.message.replaceAll('--timezone', 'timeZone').replace(/--([a-z-]+)/g, (_, name: string) => apiFieldOf(`--${name}`)!), apiFieldOf(error.field));
        throw error;
      }
      const counted = { bytes: 0 };
      try {
        await pipeline(body, sizeGuard(MAX_IMPORT_UPLOAD_BYTES, counted), fs.createWriteStream(upload.file, { mode: 0o600 }));
      } catch (error) {
        await fs.promises.rm(upload.file, { force: true });
        throw error;
      }
      const job = jobs.start(db, {
        id: upload.id,
        plan: { ...plan, file: upload.file },
        source: { workspaceId, sourceId: source.id, name: source.name },
        fileName: query.fileName,
        totalBytes: counted.bytes,
      });
      return reply.code(202).send(job);
    },
  );

  app.get(
    '/v1/imports',
    { config: { permission: 'imports.read' }, schema: docs("This server's recent imports of the workspace, newest first", { response: { 200: ImportJobListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: jobs.list((await requireServerKey(keys, request)).workspaceId) }),
  );

  app.get(
    '/v1/imports/:id',
    {
      config: { permission: 'imports.read' },
      schema: docs('One import: status, rows read, stored, duplicates, rejected, bytes read of the total', { params: ImportParams, response: { 200: ImportJobSchema, ...errors(400, 401, 403, 404) } }),
    },
    async (request) => {
      const job = jobs.get((await requireServerKey(keys, request)).workspaceId, request.params.id);
      if (!job) throw new ApiError(404, 'not_found', 'No such import on this server (finished imports are kept for a few hours)');
      return job;
    },
  );

  app.get(
    '/v1/imports/:id/rejects.ndjson',
    {
      // Rejected rows are raw personal data, like quarantined events: the same permission and masking.
      config: { permission: 'quarantine.read' },
      schema: docs('The rejected rows of an import, one JSON line each: line, reason, field, message, row', {
        params: ImportParams,
        produces: ['application/x-ndjson'],
        response: { 200: Type.Unknown({ description: 'application/x-ndjson, one rejected row per line' }), ...errors(400, 401, 403, 404) },
      }),
    },
    async (request, reply) => {
      const file = jobs.rejectsFile((await requireServerKey(keys, request)).workspaceId, request.params.id);
      if (!file) throw new ApiError(404, 'not_found', 'This import has no rejected rows (or is no longer kept)');
      return reply
        .type('application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="import-${request.params.id}.rejects.ndjson"`)
        .header('cache-control', 'no-store')
        .send(fs.createReadStream(file));
    },
  );
};
