import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { deleteAccount, getAccountView, listAccounts, putAccount } from './accounts.ts';
import { loadRecipients } from './recipients.ts';
import { renderForProfile } from './render.ts';
import {
  AccountBodySchema,
  AccountListSchema,
  AccountParams,
  AccountSchema,
  PreviewBodySchema,
  PreviewSchema,
  TemplateBodySchema,
  TemplateCheckBodySchema,
  TemplateListSchema,
  TemplateParams,
  TemplateProblemsSchema,
  TemplateSchema,
  TemplateVersionBodySchema,
  TemplateVersionQuery,
} from './schemas.ts';
import { secretsKey as processSecretsKey } from './secrets.ts';
import { addTemplateVersion, checkTemplate, createTemplate, getTemplate, listTemplates, toTemplateView } from './template-store.ts';
import { RenderError } from './templates.ts';

export interface ChannelRoutesOptions {
  db: Db;
  keys: KeyResolver;
  now?: () => Date;
  /** The key sealing account secrets; the process key (secrets.ts) when absent. */
  secretsKey?: Buffer;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['channels'], security: [{ bearer: [] }], ...schema });
const read = { permission: 'channels.read' };
const write = { permission: 'channels.write' };

/** Channel accounts, templates (versions, check, preview) for a workspace's server key. */
export const channelRoutes: FastifyPluginAsyncTypebox<ChannelRoutesOptions> = async (app, options) => {
  const { db, keys } = options;
  const key = () => options.secretsKey ?? processSecretsKey();
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;

  app.put(
    '/v1/channels/accounts/:key',
    {
      config: write,
      schema: docs('Create or replace a channel account; secrets are stored encrypted and never returned', {
        params: AccountParams,
        body: AccountBodySchema,
        response: { 200: AccountSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      if (request.body.key !== request.params.key) throw new ApiError(400, 'invalid_request', 'key must match the path', 'key');
      return withTransaction(db, (client) => putAccount(client, key(), workspaceId, request.body));
    },
  );

  app.get(
    '/v1/channels/accounts',
    { config: read, schema: docs('Channel accounts of the workspace (secret names only)', { response: { 200: AccountListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: await listAccounts(db, key(), await workspaceOf(request)) }),
  );

  app.get(
    '/v1/channels/accounts/:key',
    { config: read, schema: docs('One channel account', { params: AccountParams, response: { 200: AccountSchema, ...errors(401, 403, 404) } }) },
    async (request) => getAccountView(db, key(), await workspaceOf(request), request.params.key),
  );

  app.delete(
    '/v1/channels/accounts/:key',
    { config: write, schema: docs('Delete a channel account', { params: AccountParams, response: { 204: Type.Null(), ...errors(401, 403, 404) } }) },
    async (request, reply) => {
      await deleteAccount(db, await workspaceOf(request), request.params.key);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/channels/templates',
    {
      config: write,
      schema: docs('Create a template (version 1); Liquid errors are answered 400 with each problem and its line:column', {
        body: TemplateBodySchema,
        response: { 201: TemplateSchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const template = await withTransaction(db, (client) => createTemplate(client, workspaceId, request.body));
      return reply.code(201).send(toTemplateView(template));
    },
  );

  app.get(
    '/v1/channels/templates',
    { config: read, schema: docs('Templates of the workspace', { response: { 200: TemplateListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: await listTemplates(db, await workspaceOf(request)) }),
  );

  app.get(
    '/v1/channels/templates/:key',
    {
      config: read,
      schema: docs('A template version (the latest unless ?version=)', {
        params: TemplateParams,
        querystring: TemplateVersionQuery,
        response: { 200: TemplateSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => toTemplateView(await getTemplate(db, await workspaceOf(request), request.params.key, request.query.version)),
  );

  app.post(
    '/v1/channels/templates/:key/versions',
    {
      config: write,
      schema: docs('Add a version; earlier versions stay as they were for the journeys that pinned them', {
        params: TemplateParams,
        body: TemplateVersionBodySchema,
        response: { 201: TemplateSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const template = await withTransaction(db, (client) => addTemplateVersion(client, workspaceId, request.params.key, request.body));
      return reply.code(201).send(toTemplateView(template));
    },
  );

  app.post(
    '/v1/channels/templates/:key/check',
    {
      config: read,
      schema: docs('Check a template as a journey publish would: syntax and every variable against what the send will have', {
        params: TemplateParams,
        body: TemplateCheckBodySchema,
        response: { 200: TemplateProblemsSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const template = await getTemplate(db, workspaceId, request.params.key, request.body.version);
      const problems = await checkTemplate(db, workspaceId, {
        templateKey: template.key,
        templateVersion: template.version,
        channel: template.channel,
        eventProperties: request.body.eventProperties,
        journeyVariables: request.body.journeyVariables,
      });
      return { problems };
    },
  );

  app.post(
    '/v1/channels/templates/:key/preview',
    {
      config: read,
      schema: docs("Render a template for a real profile (its traits, identifiers and locale) with sample event and journey variables", {
        params: TemplateParams,
        body: PreviewBodySchema,
        response: { 200: PreviewSchema, ...errors(400, 401, 403, 404, 422) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const template = await getTemplate(db, workspaceId, request.params.key, request.body.version);
      const facts = (await loadRecipients(db, workspaceId, [request.body.profileId])).get(request.body.profileId);
      if (!facts?.exists) throw new ApiError(404, 'not_found', `No profile ${request.body.profileId}`, 'profileId');
      try {
        const rendered = renderForProfile(
          workspaceId,
          template,
          facts,
          { event: request.body.event, journey: request.body.journey },
          { id: 'preview', unsubscribe_url: '#unsubscribe', preferences_url: '#preferences' },
          request.body.locale,
        );
        return { locale: rendered.locale, version: template.version, fields: rendered.fields };
      } catch (error) {
        if (error instanceof RenderError) throw new ApiError(422, 'render_error', error.message, error.path);
        throw error;
      }
    },
  );
};
