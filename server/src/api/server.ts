import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import { createIngestLoad, type IngestLoad } from '../ingest/load.ts';
import { collectionRoutes } from '../ingest/routes.ts';
import type { Db } from '../storage/database.ts';
import { adminRoutes } from './admin-routes.ts';
import { createKeyResolver } from './auth.ts';
import { registerErrorHandler } from './errors.ts';
import { registerRateLimits, registerSecurityHeaders, type RateLimits } from './hardening.ts';
import { createMetrics } from './metrics.ts';
import { operationsRoutes, registerRequestMetrics } from './operations.ts';
import { identityAdminRoutes } from '../identity/matching-routes.ts';
import { readRoutes } from './read-routes.ts';
import { profileAdminRoutes, profileRoutes } from '../profiles/routes.ts';
import { segmentRoutes } from '../segments/routes.ts';
import { computedTraitRoutes } from '../segments/computed/routes.ts';
import { tagRoutes } from '../segments/tags/routes.ts';
import { activationRoutes } from '../activation/routes.ts';
import { clientSegmentRoutes } from '../segments/client-routes.ts';
import { journeyRoutes } from '../journeys/routes.ts';
import { sdkRoutes } from './sdk-route.ts';
import { requestForLog, scrubbingDestination, type LogDestination } from '../privacy/log-scrub.ts';
import { registerAccessControl } from '../privacy/access.ts';
import { userRoutes } from '../privacy/user-routes.ts';
import { auditRoutes } from '../privacy/audit-routes.ts';
import { privacyRoutes } from '../privacy/routes.ts';
import { collectionSettingsRoutes } from '../workspaces/collection-routes.ts';
import { channelRoutes, checkTemplate } from '../channels/index.ts';
import { analyticsRoutes } from '../analytics/routes.ts';
import { modelRoutes } from '../models/routes.ts';
import { decisioningRoutes } from '../decisioning/routes.ts';
import { dashboardRoutes } from '../dashboard/serve.ts';
import { overviewRoutes } from '../dashboard/routes.ts';
import { dropOffSegmentRoutes } from '../dashboard/drop-offs.ts';
import { importRoutes } from '../ingest/import-routes.ts';
import { createImportJobs, type ImportJobs } from '../ingest/import/jobs.ts';

export interface ServerOptions {
  db: Db;
  verifyAdmin: (token: string) => boolean;
  /** Pino log level, or false for silence (tests). */
  logLevel?: string | false;
  maxInflightIngest?: number;
  /** Collection requests in flight, shared with a worker in the same process (ingest/load.ts); default: this server's own. */
  ingestLoad?: IngestLoad;
  /** The server clock (receivedAt); injectable so tests control time. */
  now?: () => Date;
  /** Where log lines go (default stdout); every line passes the PII scrubber (privacy/log-scrub.ts) first. */
  logDestination?: LogDestination;
  /** Per-IP and per-caller request limits (api/hardening.ts); omitted: none (tests, benchmarks). */
  rateLimits?: RateLimits;
  /** The dashboard's build folder (default dashboard/dist); served at / with an SPA fallback. */
  dashboardDir?: string;
  /** Background imports of uploaded files (default: a registry over the system's temporary folder). */
  importJobs?: ImportJobs;
}

/** Builds the HTTP API: one Fastify plugin per concern, registered explicitly here. */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger:
      options.logLevel === false
        ? false
        : {
            level: options.logLevel ?? 'info',
            stream: scrubbingDestination(options.logDestination ?? process.stdout),
            // Route patterns, not URLs: `/v1/profiles/email:…` would name a person.
            serializers: { req: requestForLog },
            redact: ['req.headers.authorization', 'req.headers["x-write-key"]', 'req.headers.cookie'],
          },
    bodyLimit: 1024 * 1024,
    trustProxy: true,
    // Fastify's default strips unknown body fields silently; we answer 400 naming the field instead.
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  const metrics = createMetrics();
  const keys = createKeyResolver(options.db);
  const now = options.now ?? (() => new Date());

  registerErrorHandler(app);
  await registerSecurityHeaders(app);
  // Before access control: unauthenticated guessing is limited too.
  if (options.rateLimits) registerRateLimits(app, options.rateLimits, now, options.db);
  // Before any route: every route declares config.permission and this hook enforces it.
  const access = registerAccessControl(app, { db: options.db, keys, verifyAdmin: options.verifyAdmin });
  app.decorate('registeredRoutes', access.routes);
  registerRequestMetrics(app, metrics);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Touchpoint API', version: '0.1.0', description: 'Customer Data Platform: collection, admin and read APIs' },
      components: {
        securitySchemes: {
          basicAuth: { type: 'http', scheme: 'basic', description: 'Write key as the username, empty password' },
          writeKey: { type: 'apiKey', in: 'header', name: 'X-Write-Key' },
          bearer: { type: 'http', scheme: 'bearer', description: 'Admin token or server key' },
        },
      },
    },
  });
  app.get('/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());

  await app.register(operationsRoutes, { db: options.db, metrics });
  await app.register(sdkRoutes);
  await app.register(async (collection) => {
    // Browsers post from any site that embeds the SDK; write keys are public by design.
    await collection.register(cors, { origin: true, methods: ['POST', 'OPTIONS'], maxAge: 86_400 });
    await collection.register(collectionRoutes, {
      db: options.db,
      keys,
      metrics,
      now,
      maxInflight: options.maxInflightIngest ?? 512,
      load: options.ingestLoad ?? createIngestLoad(),
    });
  });
  await app.register(collectionSettingsRoutes, { db: options.db, keys, verifyAdmin: options.verifyAdmin });
  await app.register(adminRoutes, { prefix: '/admin', db: options.db, verifyAdmin: options.verifyAdmin, keys, now });
  await app.register(readRoutes, { db: options.db, keys });
  await app.register(identityAdminRoutes, { prefix: '/admin', db: options.db, verifyAdmin: options.verifyAdmin });
  await app.register(profileRoutes, { db: options.db, keys });
  await app.register(profileAdminRoutes, { prefix: '/admin', db: options.db, verifyAdmin: options.verifyAdmin });
  await app.register(segmentRoutes, { db: options.db, keys, now });
  await app.register(tagRoutes, { db: options.db, keys, now });
  await app.register(computedTraitRoutes, { db: options.db, keys, now });
  await app.register(activationRoutes, { db: options.db, keys, now });
  await app.register(userRoutes, { db: options.db });
  await app.register(auditRoutes, { db: options.db });
  await app.register(privacyRoutes, { db: options.db });
  await app.register(journeyRoutes, { db: options.db, keys, now, checkTemplate });
  await app.register(channelRoutes, { db: options.db, keys, now });
  await app.register(modelRoutes, { db: options.db, keys, now });
  await app.register(clientSegmentRoutes, { prefix: '/v1/visitor', db: options.db, keys });
  await app.register(analyticsRoutes, { db: options.db, keys, now });
  await app.register(decisioningRoutes, { db: options.db, keys, now });
  await app.register(overviewRoutes, { db: options.db, keys });
  await app.register(dropOffSegmentRoutes, { db: options.db, keys, now });
  await app.register(importRoutes, { db: options.db, keys, jobs: options.importJobs ?? createImportJobs() });
  await app.register(dashboardRoutes, { distDir: options.dashboardDir });
  return app;
}
