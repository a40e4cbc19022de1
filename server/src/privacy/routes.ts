import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import type { Db } from '../storage/database.ts';
import { actorOf } from './access.ts';
import {
  getPrivacyRequest,
  getPrivacySettings,
  listPrivacyRequests,
  PrivacyRequestSchema,
  PrivacySettingsSchema,
  putPrivacySettings,
  requestAccessExport,
  requestErasure,
  SubjectRequestSchema,
  suppressionSummary,
} from './requests.ts';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['privacy'], ...schema });
const workspaceOf = (request: FastifyRequest) => request.access!.workspaceId!;
const requesterOf = (request: FastifyRequest) => actorOf(request.access!.principal).label;

const ExportSchema = Type.Object({
  request: PrivacyRequestSchema,
  subject: Type.Object({ profileIds: Type.Array(Type.String()), identifiers: Type.Array(Type.Object({ type: Type.String(), value: Type.String() })) }),
  data: Type.Record(Type.String(), Type.Unknown(), { description: 'What each module holds about the person' }),
});
const RequestListQuery = Type.Object(
  {
    status: Type.Optional(Type.Union([Type.Literal('received'), Type.Literal('completed'), Type.Literal('failed')])),
    kind: Type.Optional(Type.Union([Type.Literal('access'), Type.Literal('erasure')])),
  },
  { additionalProperties: false },
);
const SuppressionSummarySchema = Type.Object({
  items: Type.Array(Type.Object({ identifierType: Type.String(), count: Type.Integer(), droppedEvents: Type.Integer() })),
});

/** Data-subject rights (erasure, access export), their request records, suppression and retention settings. */
export const privacyRoutes: FastifyPluginAsyncTypebox<{ db: Db }> = async (app, { db }) => {
  app.setValidatorCompiler(strictValidatorCompiler);

  app.post(
    '/v1/privacy/erasures',
    {
      config: { permission: 'privacy.erase' },
      schema: docs("Erase a person: profile, identifiers, events and every module's data; their identifiers are suppressed at collection", {
        body: SubjectRequestSchema,
        response: { 201: PrivacyRequestSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request, reply) => reply.code(201).send(await requestErasure(db, workspaceOf(request), request.body.subject, requesterOf(request), request.body.reason)),
  );

  app.post(
    '/v1/privacy/exports',
    {
      config: { permission: 'privacy.export' },
      schema: docs('Access/portability: everything held about a person, found by any identifier, as JSON', {
        body: SubjectRequestSchema,
        response: { 200: ExportSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => requestAccessExport(db, workspaceOf(request), request.body.subject, requesterOf(request), request.body.reason),
  );

  app.get(
    '/v1/privacy/requests',
    {
      config: { permission: 'privacy.read' },
      schema: docs('Data-subject requests, newest first, with deadlines and whether they are overdue', {
        querystring: RequestListQuery,
        response: { 200: Type.Object({ items: Type.Array(PrivacyRequestSchema) }), ...errors(400, 401, 403) },
      }),
    },
    async (request) => ({ items: await listPrivacyRequests(db, workspaceOf(request), request.query) }),
  );

  app.get(
    '/v1/privacy/requests/:id',
    {
      config: { permission: 'privacy.read' },
      schema: docs('One data-subject request', { params: Type.Object({ id: Type.String({ format: 'uuid' }) }), response: { 200: PrivacyRequestSchema, ...errors(401, 403, 404) } }),
    },
    async (request) => getPrivacyRequest(db, workspaceOf(request), request.params.id),
  );

  app.get(
    '/v1/privacy/suppressions',
    {
      config: { permission: 'privacy.read' },
      schema: docs('Suppressed identifiers by type (hashes only) and events dropped at collection', { response: { 200: SuppressionSummarySchema, ...errors(401, 403) } }),
    },
    async (request) => ({ items: await suppressionSummary(db, workspaceOf(request)) }),
  );

  app.get(
    '/v1/privacy/settings',
    { config: { permission: 'privacy.read' }, schema: docs('Retention and request deadlines', { response: { 200: PrivacySettingsSchema, ...errors(401, 403) } }) },
    async (request) => getPrivacySettings(db, workspaceOf(request)),
  );

  app.put(
    '/v1/privacy/settings',
    {
      config: { permission: 'privacy.write' },
      schema: docs('Set retention of raw events and inactive profiles, and the deadline of requests', {
        body: PrivacySettingsSchema,
        response: { 200: PrivacySettingsSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => putPrivacySettings(db, workspaceOf(request), request.body),
  );
};
