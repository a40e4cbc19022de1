import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { Type } from '@sinclair/typebox';
import { activeColumnarStore } from './columnar/store.ts';
import { PII_READ } from '../privacy/permissions.ts';
import { presentPersonalData } from './personal-data.ts';
import { AttributionQuerySchema, AttributionResultSchema, runAttribution } from './attribution.ts';
import { ExperimentQuerySchema, ExperimentResultSchema, JourneyResultsQuerySchema, JourneyResultsSchema, runExperiment, runJourneyResults } from './experiments.ts';
import { FunnelQuerySchema, FunnelResultSchema, runFunnel } from './funnel.ts';
import { LifecycleQuerySchema, LifecycleResultSchema, runLifecycle } from './lifecycle.ts';
import { PathsQuerySchema, PathsResultSchema, runPaths } from './paths.ts';
import {
  archiveReport,
  createReport,
  CreateReportSchema,
  getReport,
  listReports,
  ReportKeyParams,
  ReportListSchema,
  ReportRunSchema,
  ReportSchema,
  runReport,
  RunReportSchema,
  updateReport,
  UpdateReportSchema,
} from './reports.ts';
import { RetentionQuerySchema, RetentionResultSchema, runRetention } from './retention.ts';
import { runTouchpoints, TouchpointQuerySchema, TouchpointResultSchema } from './touchpoints.ts';
import { runTrend, TrendQuerySchema, TrendResultSchema } from './trends.ts';

export interface AnalyticsRoutesOptions {
  db: Db;
  keys: KeyResolver;
  now: () => Date;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['analytics'], security: [{ bearer: [] }], ...schema });
const READ = { permission: 'analytics.read' };
const WRITE = { permission: 'analytics.write' };

/** Analyses over the unified profiles' events: JSON query in, JSON answer out, one workspace per server key. */
export const analyticsRoutes: FastifyPluginAsyncTypebox<AnalyticsRoutesOptions> = async (app, options) => {
  const { db, keys, now } = options;
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;
  /** Runs an analysis and shows the personal data its groups name as the caller may see it (personal-data.ts). */
  const answer = async <T>(request: FastifyRequest, query: unknown, run: (workspaceId: string) => Promise<T>): Promise<T> => {
    const workspaceId = await workspaceOf(request);
    const result = await run(workspaceId);
    return presentPersonalData(db, workspaceId, query ?? result, result, request.access?.can(PII_READ) ?? false);
  };

  app.post(
    '/v1/analytics/funnels',
    {
      config: READ,
      schema: docs('Funnel: ordered (or strict, or any-order) steps within a conversion window, with exclusions, breakdown, time to convert, trend and drop-off profiles', {
        body: FunnelQuerySchema,
        response: { 200: FunnelResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runFunnel(db, workspaceId, request.body, now())),
  );

  app.get(
    '/v1/analytics/engine',
    {
      config: READ,
      schema: docs("Which engine answers funnels, and how fresh the columnar copy is (PostgreSQL answers while it is stale or absent)", {
        response: {
          200: Type.Object({
            engine: Type.Union([Type.Literal('columnar'), Type.Literal('postgres')]),
            lastSyncAt: Type.Union([Type.String(), Type.Null()]),
            lagSeconds: Type.Union([Type.Number(), Type.Null()]),
            cursor: Type.Union([Type.Integer(), Type.Null()], { description: 'Events with a seq up to this are in the copy' }),
            reason: Type.Optional(Type.String()),
          }),
          ...errors(401, 403),
        },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const store = activeColumnarStore();
      if (!store) return { engine: 'postgres' as const, lastSyncAt: null, lagSeconds: null, cursor: null, reason: 'no columnar copy (TOUCHPOINT_ANALYTICS_ENGINE=postgres, or not opened)' };
      const state = await store.state();
      const stale = store.staleness();
      return {
        engine: stale ? ('postgres' as const) : ('columnar' as const),
        lastSyncAt: state.lastSyncAt === null ? null : new Date(state.lastSyncAt).toISOString(),
        lagSeconds: state.lastSyncAt === null ? null : Math.round((Date.now() - state.lastSyncAt) / 100) / 10,
        cursor: state.cursors[workspaceId] ?? null,
        ...(stale ? { reason: stale } : {}),
      };
    },
  );

  app.post(
    '/v1/analytics/trends',
    {
      config: READ,
      schema: docs('Trends: event counts, unique profiles, per-profile averages and property aggregates per hour/day/week/month, with breakdown and formulas', {
        body: TrendQuerySchema,
        response: { 200: TrendResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runTrend(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/retention',
    {
      config: READ,
      schema: docs('Retention: cohorts by first-time or recurring start event, return event per day/week/month, "on" or "on or after"', {
        body: RetentionQuerySchema,
        response: { 200: RetentionResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runRetention(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/lifecycle',
    {
      config: READ,
      schema: docs('Lifecycle: per day/week/month, active profiles split into new, returning and resurrecting, and those gone dormant', {
        body: LifecycleQuerySchema,
        response: { 200: LifecycleResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runLifecycle(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/paths',
    {
      config: READ,
      schema: docs('Paths after or before an event (optionally until another), inside its session, cleaned, as Sankey nodes/edges and top paths', {
        body: PathsQuerySchema,
        response: { 200: PathsResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runPaths(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/touchpoints',
    {
      config: READ,
      schema: docs('Touchpoint performance: exposures, reach, clicks, CTR, conversions within a window and value per message, channel, journey node or placement, ranked', {
        body: TouchpointQuerySchema,
        response: { 200: TouchpointResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runTouchpoints(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/attribution',
    {
      config: READ,
      schema: docs('Attribution of conversions to channels: first/last/last non-direct/linear/time decay/position based and data-driven Markov removal effect, over a lookback window', {
        body: AttributionQuerySchema,
        response: { 200: AttributionResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runAttribution(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/experiments',
    {
      config: READ,
      schema: docs('A/B results from assignment and conversion events: rates, uplift with confidence interval, two-proportion z-test, chi-square, chance to beat, sequential decision', {
        body: ExperimentQuerySchema,
        response: { 200: ExperimentResultSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runExperiment(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/journeys',
    {
      config: READ,
      schema: docs("A journey's results from its events: treatment vs holdout uplift, random split variants, events per node", {
        body: JourneyResultsQuerySchema,
        response: { 200: JourneyResultsSchema, ...errors(400, 401, 403, 409, 503) },
      }),
    },
    async (request) => answer(request, request.body, (workspaceId) => runJourneyResults(db, workspaceId, request.body, now())),
  );

  app.post(
    '/v1/analytics/reports',
    {
      config: WRITE,
      schema: docs('Save a report (a named, versioned query of one kind; a one-series trend serves as a metric definition)', {
        body: CreateReportSchema,
        response: { 201: ReportSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => reply.code(201).send(await createReport(db, await workspaceOf(request), request.body)),
  );

  app.get(
    '/v1/analytics/reports',
    { config: READ, schema: docs('Saved reports of the workspace', { response: { 200: ReportListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: await listReports(db, await workspaceOf(request)) }),
  );

  app.get(
    '/v1/analytics/reports/:key',
    { config: READ, schema: docs('A saved report', { params: ReportKeyParams, response: { 200: ReportSchema, ...errors(400, 401, 403, 404) } }) },
    async (request) => getReport(db, await workspaceOf(request), request.params.key),
  );

  app.patch(
    '/v1/analytics/reports/:key',
    {
      config: WRITE,
      schema: docs('Edit a saved report; a changed definition becomes a new version (earlier ones stay runnable)', {
        params: ReportKeyParams,
        body: UpdateReportSchema,
        response: { 200: ReportSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => updateReport(db, await workspaceOf(request), request.params.key, request.body),
  );

  app.delete(
    '/v1/analytics/reports/:key',
    { config: WRITE, schema: docs('Archive a saved report', { params: ReportKeyParams, response: { 200: ReportSchema, ...errors(400, 401, 403, 404) } }) },
    async (request) => archiveReport(db, await workspaceOf(request), request.params.key),
  );

  app.post(
    '/v1/analytics/reports/:key/run',
    {
      config: READ,
      schema: docs('Run a saved report (optionally another range, or an earlier version)', {
        params: ReportKeyParams,
        body: RunReportSchema,
        response: { 200: ReportRunSchema, ...errors(400, 401, 403, 404, 409, 503) },
      }),
    },
    async (request) => answer(request, null, (workspaceId) => runReport(db, workspaceId, request.params.key, request.body, now())),
  );
};
