import helmet from '@fastify/helmet';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Queryable } from '../storage/database.ts';
import { createSharedRateLimiter } from './shared-rate-limit.ts';
import { ApiError } from './errors.ts';

/** Requests per one-second window, shared by every process on the database; null turns a limit off. */
export interface RateLimits {
  /** Collection requests (`events.write`, `visitor.read`) per client IP. */
  collectionPerIp: number | null;
  /** Every other request per client IP (the API, login, admin), public GETs (dashboard files, health, SDK) excepted. */
  apiPerIp: number | null;
  /** API requests per caller (key, user session, admin token), after authentication. */
  apiPerCaller: number | null;
}

const COLLECTION_PERMISSIONS = new Set(['events.write', 'visitor.read']);

/**
 * The dashboard is a React app served from this origin: scripts and connections stay here; styles
 * may be inline (the hosted preference pages use style attributes); nothing may frame it.
 */
export const CONTENT_SECURITY_POLICY = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'img-src': ["'self'", 'data:', 'blob:'],
  'font-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
};

const HSTS = 'max-age=31536000; includeSubDomains';

/**
 * Security headers on every answer (CSP, X-Content-Type-Options, X-Frame-Options, Referrer-Policy…
 * through @fastify/helmet) and HSTS on answers to requests that arrived over TLS (directly or as
 * X-Forwarded-Proto from the proxy; plain-HTTP development answers carry none).
 */
export async function registerSecurityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY },
    // The SDK file and collection answers are loaded by other sites.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    crossOriginEmbedderPolicy: false,
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    hsts: false,
  });
  app.addHook('onRequest', async (request, reply) => {
    if (request.protocol === 'https') reply.header('strict-transport-security', HSTS);
  });
}

/**
 * Per-IP limits on collection and the API (before authentication, so guessing keys or passwords
 * is limited too) and a per-caller limit on the API (after it); 429 with Retry-After. Counted per
 * one-second window in PostgreSQL (api/shared-rate-limit.ts), so every process on the database
 * shares them, on the injectable server clock. Per-source event limits stay in collection
 * (ingest/routes.ts). Client IPs come from X-Forwarded-For (trustProxy).
 */
export function registerRateLimits(app: FastifyInstance, limits: RateLimits, now: () => Date, db: Queryable): void {
  let warnedAt = -Infinity;
  const limiter = createSharedRateLimiter(db, {
    // Every limited request fails the same way while the database is down: one line per minute is enough.
    onStorageError: (error) => {
      if (now().getTime() - warnedAt < 60_000) return;
      warnedAt = now().getTime();
      app.log.warn({ err: error }, 'rate limits: database unreachable, counting in this process only');
    },
  });
  const refuse = (wait: number, who: string) => {
    throw new ApiError(429, 'rate_limited', `Too many requests from this ${who}; retry after ${wait}s`, undefined, { 'retry-after': String(wait) });
  };
  const groupOf = (request: FastifyRequest): 'collection' | 'api' | null => {
    const config = request.routeOptions.config;
    if (request.routeOptions.url === undefined) return 'api';
    if (config.credentialsInBody || COLLECTION_PERMISSIONS.has(config.permission ?? '')) return 'collection';
    if (config.permission === 'public' && (request.method === 'GET' || request.method === 'HEAD')) return null;
    return 'api';
  };
  if (limits.collectionPerIp !== null || limits.apiPerIp !== null) {
    app.addHook('onRequest', async (request) => {
      const group = groupOf(request);
      const rate = group === 'collection' ? limits.collectionPerIp : group === 'api' ? limits.apiPerIp : null;
      if (!rate) return;
      const wait = await limiter.take(`ip:${group}:${request.ip}`, rate, now().getTime());
      if (wait > 0) refuse(wait, 'address');
    });
  }
  if (limits.apiPerCaller !== null) {
    const rate = limits.apiPerCaller;
    app.addHook('preHandler', async (request) => {
      const access = request.access;
      if (!access || groupOf(request) !== 'api') return;
      const principal = access.principal;
      const caller = principal.kind === 'key' ? `key:${principal.key.keyId}` : principal.kind === 'user' ? `user:${principal.user.userId}` : 'admin';
      const wait = await limiter.take(`caller:${caller}`, rate, now().getTime());
      if (wait > 0) refuse(wait, principal.kind === 'key' ? 'key' : principal.kind === 'user' ? 'user' : 'token');
    });
  }
}
