import type { FastifyError, FastifyInstance } from 'fastify';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';

/** The one error shape of every API response: a machine code, a sentence, and the field at fault. */
export interface ApiErrorBody {
  error: string;
  message: string;
  field?: string;
  /** Structured facts about the error for programs, e.g. a syntax error's line and column. */
  details?: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Maps thrown errors to the API's error shape; unexpected ones are logged and answered 500. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if (error instanceof ApiError) {
      const body: ApiErrorBody = { error: error.code, message: error.message };
      if (error.field) body.field = error.field;
      if (error.details) body.details = error.details;
      return reply.code(error.statusCode).headers(error.headers).send(body);
    }
    if (error instanceof NotFoundError) return reply.code(404).send({ error: 'not_found', message: error.message });
    if (error instanceof ConflictError) return reply.code(409).send({ error: 'conflict', message: error.message });
    if (error instanceof RangeError) return reply.code(400).send({ error: 'invalid_request', message: error.message });
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      const first = fastifyError.validation[0];
      const field = first ? fieldOf(first.instancePath, first.params) : undefined;
      return reply.code(400).send({
        error: 'invalid_request',
        message: `${fastifyError.validationContext ?? 'request'}${first?.instancePath ?? ''} ${first?.message ?? 'is invalid'}`,
        ...(field ? { field } : {}),
      });
    }
    if (fastifyError.statusCode && fastifyError.statusCode < 500) {
      return reply.code(fastifyError.statusCode).send({
        error: codeForStatus(fastifyError.statusCode, fastifyError.code),
        message: fastifyError.message,
      });
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.code(500).send({ error: 'internal', message: 'Internal server error' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` }),
  );
}

function fieldOf(instancePath: string, params: Record<string, unknown>): string | undefined {
  const base = instancePath.replace(/^\//, '').replaceAll('/', '.');
  const missing = typeof params.missingProperty === 'string' ? params.missingProperty : undefined;
  const extra = typeof params.additionalProperty === 'string' ? params.additionalProperty : undefined;
  const leaf = missing ?? extra;
  if (leaf) return base ? `${base}.${leaf}` : leaf;
  return base || undefined;
}

function codeForStatus(status: number, fastifyCode: string | undefined): string {
  if (status === 413) return 'payload_too_large';
  if (status === 415) return 'unsupported_media_type';
  if (fastifyCode === 'FST_ERR_CTP_INVALID_JSON_BODY' || fastifyCode === 'FST_ERR_CTP_EMPTY_JSON_BODY') return 'malformed_json';
  return 'invalid_request';
}
