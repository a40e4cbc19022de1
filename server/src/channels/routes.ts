import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { ApiError } from '../api/errors.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { deleteAccount, getAccountView, listAccounts, putAccount } from './accounts.ts';
import { locateProfile } from '../profiles/queries.ts';
import { blockProfile, listBlocks, unblockProfile, type ProfileBlock } from './blocks.ts';
import { loadRecipients } from './recipients.ts';
import { renderForProfile } from './render.ts';
import { enqueueMessage } from './enqueue.ts';
import { getMessage, listDeadLetters, listMessages, retryMessage, type MessageDetail } from './messages.ts';
import { addSuppressions, getPolicy, listSubscriptionGroups, listSuppressions, putPolicy, putSubscriptionGroup, removeSuppression } from './policy.ts';
import { trackingRoutes } from './tracking-routes.ts';
import { accountCallbackUrl, trackingKey } from './tracking.ts';
import { publicUrl as defaultPublicUrl } from './worker.ts';
import type { MessageSummary } from './contract.ts';
import {
  type AccountView,
  AccountBodySchema,
  AccountListSchema,
  AccountParams,
  AccountSchema,
  BlockBodySchema,
  BlockListSchema,
  BlockParams,
  BlockResultSchema,
  DeadLetterQuery,
  MessageDetailSchema,
  MessageListQuery,
  MessageListSchema,
  MessageParams,
  PolicySchema,
  PreviewBodySchema,
  SendBodySchema,
  SendResultSchema,
  SubscriptionGroupBodySchema,
  SubscriptionGroupListSchema,
  SubscriptionGroupSchema,
  SuppressionBodySchema,
  SuppressionDeleteQuery,
  SuppressionListSchema,
  SuppressionQuery,
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
  /** Base URL providers call back on; TOUCHPOINT_PUBLIC_URL (worker.ts) when absent. */
  publicUrl?: string;
  /** See TrackingRoutesOptions.receiptPause. */
  receiptPause?: () => Promise<void>;
}

const summaryView = (m: MessageSummary) => ({ ...m, createdAt: m.createdAt.toISOString(), updatedAt: m.updatedAt.toISOString() });
const detailView = (m: MessageDetail) => ({
  ...summaryView(m),
  profileId: m.profileId,
  purpose: m.purpose,
  accountKey: m.accountKey,
  templateVersion: m.templateVersion,
  address: m.address,
  dueAt: m.dueAt.toISOString(),
  attempts: m.attempts,
  provider: m.provider,
  providerMessageId: m.providerMessageId,
  history: m.history.map((h) => ({ ...h, at: h.at.toISOString() })),
});

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['channels'], security: [{ bearer: [] }], ...schema });
const read = { permission: 'channels.read' };
const write = { permission: 'channels.write' };

/** Channel accounts, templates (versions, check, preview) for a workspace's server key. */
export const channelRoutes: FastifyPluginAsyncTypebox<ChannelRoutesOptions> = async (app, options) => {
  const { db, keys } = options;
  const key = () => options.secretsKey ?? processSecretsKey();
  const now = options.now ?? (() => new Date());
  await app.register(trackingRoutes, {
    db,
    now,
    secretsKey: key,
    publicUrl: () => options.publicUrl ?? defaultPublicUrl(),
    ...(options.receiptPause ? { receiptPause: options.receiptPause } : {}),
  });
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;
  // Providers that report for a whole account get its callback URL (Twilio's travels with each message).
  const CALLBACK_ROUTE: Record<string, string> = { aliyun: 'aliyun', wechat: 'wechat', smtp: 'bounce' };
  const withCallback = (workspaceId: string, account: AccountView): AccountView => {
    const route = CALLBACK_ROUTE[account.provider];
    if (!route) return account;
    return { ...account, callbackUrl: accountCallbackUrl(trackingKey(key()), options.publicUrl ?? defaultPublicUrl(), workspaceId, account.key, route) };
  };

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
      return withCallback(workspaceId, await withTransaction(db, (client) => putAccount(client, key(), workspaceId, request.body)));
    },
  );

  app.get(
    '/v1/channels/accounts',
    { config: read, schema: docs('Channel accounts of the workspace (secret names only)', { response: { 200: AccountListSchema, ...errors(401, 403) } }) },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return { items: (await listAccounts(db, key(), workspaceId)).map((account) => withCallback(workspaceId, account)) };
    },
  );

  app.get(
    '/v1/channels/accounts/:key',
    { config: read, schema: docs('One channel account', { params: AccountParams, response: { 200: AccountSchema, ...errors(401, 403, 404) } }) },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return withCallback(workspaceId, await getAccountView(db, key(), workspaceId, request.params.key));
    },
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

  app.post(
    '/v1/channels/send',
    {
      config: write,
      schema: docs('Send one message to a profile through the guards and the outbox (the same path as a journey send node)', {
        body: SendBodySchema,
        response: { 202: SendResultSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const { variables, ...rest } = request.body;
      const result = await withTransaction(db, (client) => enqueueMessage(client, { ...rest, workspaceId, variables: variables ?? {} }, now()));
      return reply.code(202).send(result);
    },
  );

  app.get(
    '/v1/channels/messages',
    {
      config: read,
      schema: docs('Messages of a profile, journey or journey instance (one filter at least), oldest first', {
        querystring: MessageListQuery,
        response: { 200: MessageListSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      if (!request.query.profileId && !request.query.journeyId && !request.query.instanceId) {
        throw new ApiError(400, 'invalid_request', 'Give profileId, journeyId or instanceId', 'profileId');
      }
      return { items: (await listMessages(db, workspaceId, request.query)).map(summaryView) };
    },
  );

  app.get(
    '/v1/channels/messages/:id',
    { config: read, schema: docs('One message with its status history', { params: MessageParams, response: { 200: MessageDetailSchema, ...errors(400, 401, 403, 404) } }) },
    async (request) => {
      const message = await getMessage(db, await workspaceOf(request), request.params.id);
      if (!message) throw new ApiError(404, 'not_found', `No message ${request.params.id}`);
      return detailView(message);
    },
  );

  app.get(
    '/v1/channels/dead-letters',
    { config: read, schema: docs('Messages that failed for good, newest first', { querystring: DeadLetterQuery, response: { 200: MessageListSchema, ...errors(400, 401, 403) } }) },
    async (request) => ({ items: (await listDeadLetters(db, await workspaceOf(request), request.query.limit ?? 100)).map(summaryView) }),
  );

  app.post(
    '/v1/channels/messages/:id/retry',
    { config: write, schema: docs('Queue a failed message again (same message id and idempotency key)', { params: MessageParams, response: { 202: MessageDetailSchema, ...errors(400, 401, 403, 404, 409) } }) },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      if (!(await retryMessage(db, workspaceId, request.params.id, now()))) {
        const message = await getMessage(db, workspaceId, request.params.id);
        if (!message) throw new ApiError(404, 'not_found', `No message ${request.params.id}`);
        throw new ApiError(409, 'conflict', `Only failed messages can be retried; this one is ${message.status}`);
      }
      return reply.code(202).send(detailView((await getMessage(db, workspaceId, request.params.id))!));
    },
  );

  app.get(
    '/v1/channels/policy',
    { config: read, schema: docs('Frequency caps, quiet hours and opt-in channels for marketing messages', { response: { 200: PolicySchema, ...errors(401, 403) } }) },
    async (request) => getPolicy(db, await workspaceOf(request)),
  );

  app.put(
    '/v1/channels/policy',
    { config: write, schema: docs('Replace the delivery policy', { body: PolicySchema, response: { 200: PolicySchema, ...errors(400, 401, 403) } }) },
    async (request) => putPolicy(db, await workspaceOf(request), request.body),
  );

  const blockView = (block: ProfileBlock) => ({ ...block, blockedAt: block.blockedAt.toISOString() });

  app.get(
    '/v1/channels/blocked-profiles',
    { config: read, schema: docs('Blocked profiles, newest first (at most 500)', { response: { 200: BlockListSchema, ...errors(400, 401, 403) } }) },
    async (request) => ({ items: (await listBlocks(db, await workspaceOf(request))).map(blockView) }),
  );

  app.put(
    '/v1/channels/blocked-profiles/:profile',
    {
      config: write,
      schema: docs('Block a profile: nothing is sent to it on any channel, transactional included (skipped, reason `blocked`); its queued messages are cancelled', {
        params: BlockParams,
        body: BlockBodySchema,
        response: { 200: BlockResultSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const key = await requireServerKey(keys, request);
      const { profileId } = await locateProfile(db, key.workspaceId, request.params.profile, 'profile');
      const { block, cancelledMessages } = await blockProfile(db, key.workspaceId, profileId, { reason: request.body?.reason ?? null, blockedBy: key.keyId }, now());
      return { block: blockView(block), cancelledMessages };
    },
  );

  app.delete(
    '/v1/channels/blocked-profiles/:profile',
    {
      config: write,
      schema: docs('Clear a block: the profile can be sent to again (messages cancelled by the block stay cancelled)', {
        params: BlockParams,
        response: { 204: Type.Null(), ...errors(400, 401, 403, 404) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      const { profileId } = await locateProfile(db, workspaceId, request.params.profile, 'profile');
      if (!(await unblockProfile(db, workspaceId, profileId))) throw new ApiError(404, 'not_found', `Profile ${request.params.profile} is not blocked`, 'profile');
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/channels/suppressions',
    { config: read, schema: docs('Suppressed addresses (bounces, invalid recipients, operator entries)', { querystring: SuppressionQuery, response: { 200: SuppressionListSchema, ...errors(400, 401, 403) } }) },
    async (request) => ({ items: await listSuppressions(db, await workspaceOf(request), request.query.channel) }),
  );

  app.post(
    '/v1/channels/suppressions',
    { config: write, schema: docs('Suppress an address on a channel: nothing is sent to it, transactional included', { body: SuppressionBodySchema, response: { 204: Type.Null(), ...errors(400, 401, 403) } }) },
    async (request, reply) => {
      await addSuppressions(db, await workspaceOf(request), [{ ...request.body, reason: request.body.reason ?? 'operator' }]);
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/channels/suppressions',
    { config: write, schema: docs('Lift a suppression', { querystring: SuppressionDeleteQuery, response: { 204: Type.Null(), ...errors(400, 401, 403, 404) } }) },
    async (request, reply) => {
      await removeSuppression(db, await workspaceOf(request), request.query.channel, request.query.address);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/channels/subscription-groups',
    { config: read, schema: docs('Subscription groups', { response: { 200: SubscriptionGroupListSchema, ...errors(401, 403) } }) },
    async (request) => ({ items: await listSubscriptionGroups(db, await workspaceOf(request)) }),
  );

  app.put(
    '/v1/channels/subscription-groups/:key',
    {
      config: write,
      schema: docs('Create or replace a subscription group (opt_out: subscribed until they leave; opt_in: only after joining)', {
        params: TemplateParams,
        body: SubscriptionGroupBodySchema,
        response: { 200: SubscriptionGroupSchema, ...errors(400, 401, 403) },
      }),
    },
    async (request) => {
      if (request.body.key !== request.params.key) throw new ApiError(400, 'invalid_request', 'key must match the path', 'key');
      return putSubscriptionGroup(db, await workspaceOf(request), request.body);
    },
  );
};
