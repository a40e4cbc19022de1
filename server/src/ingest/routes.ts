import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { presentedWriteKey, type KeyResolver } from '../api/auth.ts';
import { ApiError } from '../api/errors.ts';
import type { Metrics } from '../api/metrics.ts';
import type { Db } from '../storage/database.ts';
import { collectionSettingsOf, consentRequirement } from '../workspaces/collection-settings.ts';
import type { ResolvedKey } from '../workspaces/store.ts';
import { readJsonBody } from './body.ts';
import { normalizeEvent, type NormalizedEvent, type Rejection } from './normalize.ts';
import { createSharedTokenBuckets } from '../api/shared-rate-limit.ts';
import { suppressionFilter } from '../privacy/suppression.ts';
import { BatchSchema, EventSchema, IngestResponseSchema, LIMITS, type EventType, type IngestResponse } from './schemas.ts';
import { quarantine, storeEvents } from './store.ts';
import type { InFlightRequest, IngestLoad } from './load.ts';

export interface CollectionOptions {
  db: Db;
  keys: KeyResolver;
  metrics: Metrics;
  now: () => Date;
  /** Requests in flight before new ones are shed with 429. */
  maxInflight: number;
  /** Where requests in flight are counted (shared with the worker's loops: ingest/load.ts). */
  load: IngestLoad;
}

const SINGLE_ENDPOINTS: Array<[EventType, string]> = [
  ['track', 't'],
  ['identify', 'i'],
  ['page', 'p'],
  ['screen', 's'],
  ['group', 'g'],
  ['alias', 'a'],
];
const checkBatch = TypeCompiler.Compile(BatchSchema);

const ErrorResponse = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    field: { type: 'string' },
    quarantineId: { type: 'string' },
  },
} as const;

// Bodies are read and validated per item by the handler (so one bad item of a batch is
// quarantined, not the whole request); the schemas below are the same ones normalize.ts checks
// with, attached for the OpenAPI document. Fastify's own validation is turned off for them.
const documentOnly = () => () => true;

// Browsers only let scripts read response headers that are exposed, and clients back off by Retry-After.
function retryAfter(seconds: number): Record<string, string> {
  return { 'retry-after': String(seconds), 'access-control-expose-headers': 'Retry-After' };
}

/** A request without a body never reaches the body parser; it is as malformed as an empty one. */
function requireBody(request: FastifyRequest): unknown {
  if (request.body === undefined) throw new ApiError(400, 'malformed_json', 'The request body is empty');
  return request.body;
}

// The write key may come in the body, so access control checks it once the body is read.
const COLLECTION_ACCESS = { permission: 'events.write', credentialsInBody: true };

const COLLECTION_SECURITY: Array<Record<string, string[]>> = [{ basicAuth: [] }, { writeKey: [] }];

function routeSchema(summary: string, body: unknown) {
  return {
    summary,
    tags: ['collection'],
    security: COLLECTION_SECURITY,
    body,
    response: { 200: IngestResponseSchema, 400: ErrorResponse, 401: ErrorResponse, 413: ErrorResponse, 429: ErrorResponse },
  };
}

/** The Segment-compatible tracking API: `/v1/{track,identify,page,screen,group,alias,batch,import}` and short forms. */
export async function collectionRoutes(app: FastifyInstance, options: CollectionOptions): Promise<void> {
  const { db, keys, metrics, now } = options;
  // A source's events per second, shared by every API process on the database.
  let lastStorageWarning = 0;
  const limiter = createSharedTokenBuckets(db, {
    onStorageError: (error) => {
      if (Date.now() - lastStorageWarning < 60_000) return;
      lastStorageWarning = Date.now();
      app.log.warn({ err: error }, 'source rate limits: database unreachable, counting in this process only');
    },
  });
  const suppression = suppressionFilter(db);
  const { load } = options;
  // Each request's share of the load, so its events count once its body is read (ingest/load.ts).
  const inFlightRequests = new WeakMap<FastifyRequest, InFlightRequest>();
  const carry = (request: FastifyRequest, events: number) => inFlightRequests.get(request)?.carry(events);

  // Bodies are read raw by readJsonBody (gzip, any content type, limit after decompression).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, _payload, done) => {
    readJsonBody(request.raw, LIMITS.batchBytes).then(
      (body) => done(null, body),
      (error: Error) => done(error, undefined),
    );
  });

  app.addHook('onRequest', async (request, reply) => {
    if (load.inFlight >= options.maxInflight) {
      metrics.requestsRejected.inc({ reason: 'overloaded' });
      throw new ApiError(429, 'overloaded', 'Too many requests in flight; retry shortly', undefined, retryAfter(1));
    }
    const inFlight = load.enter();
    inFlightRequests.set(request, inFlight);
    reply.raw.once('close', () => inFlight.leave());
  });

  // Refusals by the access-control hook (privacy/access.ts) are counted here.
  app.addHook('onError', async (_request, _reply, error) => {
    if (error instanceof ApiError && error.code === 'unauthorized') metrics.requestsRejected.inc({ reason: 'unauthorized' });
  });

  async function authenticate(request: FastifyRequest): Promise<ResolvedKey & { sourceId: string }> {
    const principal = request.access?.principal;
    if (principal?.kind === 'key' && principal.key.kind === 'write' && principal.key.sourceId) {
      return principal.key as ResolvedKey & { sourceId: string };
    }
    const key = presentedWriteKey(request, request.body);
    if (!key) {
      throw new ApiError(401, 'unauthorized', 'A write key is required: HTTP Basic username, X-Write-Key header, or writeKey in the body');
    }
    const resolved = await keys.resolve(key);
    if (!resolved || resolved.kind !== 'write' || !resolved.sourceId) {
      throw new ApiError(401, 'unauthorized', 'Unknown or disabled write key');
    }
    return resolved as ResolvedKey & { sourceId: string };
  }

  async function checkRate(source: ResolvedKey, count: number): Promise<void> {
    if (!source.rateLimitPerSecond || count === 0) return;
    const wait = await limiter.take(source.workspaceId, `source:${source.sourceId!}`, source.rateLimitPerSecond, count, now().getTime());
    if (wait > 0) {
      metrics.requestsRejected.inc({ reason: 'rate_limited' });
      throw new ApiError(
        429,
        'rate_limited',
        `This source accepts ${source.rateLimitPerSecond} event${source.rateLimitPerSecond === 1 ? '' : 's'} per second; retry after ${wait}s`,
        undefined,
        retryAfter(wait),
      );
    }
  }

  async function ingest(
    source: ResolvedKey & { sourceId: string },
    endpoint: string,
    results: Array<{ ok: true; event: NormalizedEvent } | { ok: false; rejection: Rejection }>,
  ) {
    const valid: NormalizedEvent[] = [];
    const invalid: Array<{ index: number; rejection: Rejection }> = [];
    results.forEach((result, index) => (result.ok ? valid.push(result.event) : invalid.push({ index, rejection: result.rejection })));
    const ref = { workspaceId: source.workspaceId, sourceId: source.sourceId };
    // Events of people erased on request are dropped and counted (privacy/suppression.ts).
    const { kept, suppressed } = await suppression.filter(source.workspaceId, valid);
    if (suppressed > 0) metrics.eventsRejected.inc({ endpoint, reason: 'suppressed' }, suppressed);
    // Valid events first: if quarantining then fails, the client's retry stores nothing twice
    // (messageIds) and quarantines the invalid items once.
    const stored = await storeEvents(db, ref, kept, endpoint);
    const quarantined = await quarantine(db, ref, endpoint, invalid.map((item) => item.rejection));
    for (const item of quarantined) metrics.eventsRejected.inc({ endpoint, reason: item.error });
    for (const item of stored.failed) metrics.eventsRejected.inc({ endpoint, reason: item.error });
    metrics.eventsAccepted.inc({ endpoint }, stored.stored.length);
    metrics.eventsDuplicate.inc({ endpoint }, stored.duplicates);
    const rejected: IngestResponse['rejected'] = quarantined.map((item, i) => ({
      index: invalid[i]!.index,
      messageId: item.messageId,
      error: item.error,
      field: item.field,
      message: item.message,
      quarantineId: item.quarantineId,
    }));
    for (const item of stored.failed) {
      rejected.push({
        index: results.findIndex((r) => r.ok && r.event.messageId === item.messageId),
        messageId: item.messageId,
        error: item.error,
        field: item.field,
        message: item.message,
        quarantineId: item.quarantineId,
      });
    }
    return { accepted: stored.stored.length, duplicates: stored.duplicates, rejected };
  }

  for (const [type, short] of SINGLE_ENDPOINTS) {
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const body = requireBody(request);
      carry(request, 1);
      const source = await authenticate(request);
      await checkRate(source, 1);
      const consent = consentRequirement(await collectionSettingsOf(db, source));
      const result = normalizeEvent(body, { type, receivedAt: now(), consent });
      const outcome = await ingest(source, type, [result]);
      const rejected = outcome.rejected[0];
      if (rejected) {
        return reply.code(400).send({
          error: rejected.error,
          message: rejected.message,
          ...(rejected.field ? { field: rejected.field } : {}),
          quarantineId: rejected.quarantineId,
        });
      }
      return { success: true, ...outcome };
    };
    const schema = routeSchema(`Record one ${type} call (Segment spec)`, EventSchema);
    app.post(`/v1/${type}`, { config: COLLECTION_ACCESS, schema, validatorCompiler: documentOnly }, handler);
    app.post(`/v1/${short}`, { config: COLLECTION_ACCESS, schema: { ...schema, hide: true }, validatorCompiler: documentOnly }, handler);
  }

  const batchHandler = (historical: boolean) => async (request: FastifyRequest) => {
    const body = requireBody(request);
    const source = await authenticate(request);
    if (!checkBatch.Check(body)) {
      const first = checkBatch.Errors(body).First();
      const field = first?.path.replace(/^\//, '').replaceAll('/', '.') || 'batch';
      throw new ApiError(400, 'invalid_request', `${field}: ${first?.message ?? 'a batch body is {"batch": [events]}'}`, field);
    }
    if (body.batch.length > LIMITS.batchEvents) {
      metrics.requestsRejected.inc({ reason: 'too_many_events' });
      throw new ApiError(400, 'too_many_events', `A batch holds at most ${LIMITS.batchEvents} events; this one has ${body.batch.length}`, 'batch');
    }
    carry(request, body.batch.length);
    await checkRate(source, body.batch.length);
    const receivedAt = now();
    const defaults = { context: body.context, integrations: body.integrations, sentAt: body.sentAt };
    const consent = consentRequirement(await collectionSettingsOf(db, source));
    const results = body.batch.map((item) => normalizeEvent(item, { receivedAt, historical, batch: defaults, consent }));
    const endpoint = historical ? 'import' : 'batch';
    return { success: true, ...(await ingest(source, endpoint, results)) };
  };
  const batchSchema = routeSchema('Record up to 2,500 events of any type (Segment batch)', BatchSchema);
  app.post('/v1/batch', { config: COLLECTION_ACCESS, schema: batchSchema, validatorCompiler: documentOnly }, batchHandler(false));
  app.post('/v1/b', { config: COLLECTION_ACCESS, schema: { ...batchSchema, hide: true }, validatorCompiler: documentOnly }, batchHandler(false));
  app.post(
    '/v1/import',
    { config: COLLECTION_ACCESS, schema: routeSchema('Import historical events: timestamps are kept as sent, without clock-skew correction', BatchSchema), validatorCompiler: documentOnly },
    batchHandler(true),
  );
}
