import type { FastifyInstance } from 'fastify';
import type { Db } from '../storage/database.ts';
import type { Metrics } from './metrics.ts';

/** Counts and times every request; added on the root instance so it sees all plugins' routes. */
export function registerRequestMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
}

/** `GET /health` and `GET /metrics` (Prometheus). */
export async function operationsRoutes(app: FastifyInstance, options: { db: Db; metrics: Metrics }): Promise<void> {
  const { db, metrics } = options;

  app.get(
    '/health',
    {
      config: { permission: 'public' },
      schema: {
        summary: 'Liveness and database reachability',
        tags: ['operations'],
        response: {
          200: { type: 'object', properties: { status: { type: 'string' }, database: { type: 'string' } } },
          503: { type: 'object', properties: { status: { type: 'string' }, database: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
    async (_request, reply) => {
      try {
        await db.query('select 1');
        return { status: 'ok', database: 'ok' };
      } catch (error) {
        return reply.code(503).send({ status: 'unavailable', database: 'unreachable', message: (error as Error).message });
      }
    },
  );

  app.get('/metrics', { config: { permission: 'public' }, schema: { summary: 'Prometheus metrics', tags: ['operations'] } }, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
