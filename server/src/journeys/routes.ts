import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { requireServerKey, type KeyResolver } from '../api/auth.ts';
import { ErrorResponseSchema } from '../api/error-schema.ts';
import { strictValidatorCompiler } from '../api/validation.ts';
import { cancelMessages, listMessages } from '../channels/index.ts';
import type { CheckTemplate } from '../channels/contract.ts';
import { locateProfile } from '../profiles/queries.ts';
import { prepareTransitionStorage } from '../segments/transitions.ts';
import { withTransaction, type Db } from '../storage/database.ts';
import { dryRun } from './dry-run.ts';
import { enterProfiles } from './executor.ts';
import { loadVersion, type JourneyVersion } from './instances.ts';
import {
  ArchiveResultSchema,
  CreateJourneySchema,
  DryRunBodySchema,
  DryRunResultSchema,
  InstanceDetailSchema,
  InstanceListQuerySchema,
  InstanceListSchema,
  InstanceParams,
  InstanceSchema,
  JourneyKeyParams,
  JourneyListQuerySchema,
  JourneyListSchema,
  JourneySchema,
  JourneyVersionListSchema,
  MigrateBodySchema,
  MigrateResultSchema,
  NodeCountsSchema,
  ProblemsSchema,
  PublishBodySchema,
  PublishResultSchema,
  SkipWaitBodySchema,
  TestEntryBodySchema,
  TestEntryResultSchema,
  UpdateJourneySchema,
  ValidateBodySchema,
  type JourneyView,
} from './schemas.ts';
import {
  archiveJourney,
  createJourney,
  endInstances,
  getJourney,
  journeyCheck,
  journeyProblems,
  listJourneys,
  migrateJourney,
  pauseJourney,
  publishJourney,
  refuseProblems,
  resumeJourney,
  skipWait,
  updateJourney,
  type JourneyRecord,
} from './store.ts';
import { getInstance, instancePath, listInstances, listVersions, nodeCounts, toInstanceView } from './views.ts';

export interface JourneyRoutesOptions {
  db: Db;
  keys: KeyResolver;
  now: () => Date;
  /** channels/' template check, run at validate and publish; absent: templates are not checked. */
  checkTemplate?: CheckTemplate;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [code, ErrorResponseSchema]));
const docs = <S extends object>(summary: string, schema: S) => ({ summary, tags: ['journeys'], security: [{ bearer: [] }], ...schema });
const read = { permission: 'journeys.read' };
const write = { permission: 'journeys.write' };

/**
 * Journeys for a workspace's server key: define and validate the graph, publish versions, pause,
 * resume, archive, enter a profile by hand, and follow instances node by node.
 */
export const journeyRoutes: FastifyPluginAsyncTypebox<JourneyRoutesOptions> = async (app, options) => {
  const { db, keys, now } = options;
  const checks = options.checkTemplate ? { checkTemplate: options.checkTemplate } : {};
  app.setValidatorCompiler(strictValidatorCompiler);
  const workspaceOf = async (request: FastifyRequest) => (await requireServerKey(keys, request)).workspaceId;
  const view = async (workspaceId: string, journey: JourneyRecord): Promise<JourneyView> => ({
    id: journey.id,
    key: journey.key,
    name: journey.name,
    description: journey.description,
    status: journey.status,
    currentVersion: journey.currentVersion,
    enteredCount: journey.enteredCount,
    definition: journey.draft,
    ...(journey.status === 'archived' ? { problems: [], warnings: [] } : await journeyCheck(db, workspaceId, journey.draft, checks)),
    createdAt: journey.createdAt.toISOString(),
    updatedAt: journey.updatedAt.toISOString(),
  });

  app.post(
    '/v1/journeys',
    {
      config: write,
      schema: docs('Create a journey as a draft; `problems` says what publishing it would refuse', {
        body: CreateJourneySchema,
        response: { 201: JourneySchema, ...errors(400, 401, 403, 409) },
      }),
    },
    async (request, reply) => {
      const workspaceId = await workspaceOf(request);
      return reply.code(201).send(await view(workspaceId, await createJourney(db, workspaceId, request.body)));
    },
  );

  app.get(
    '/v1/journeys',
    {
      config: read,
      schema: docs('Journeys of the workspace, newest first', { querystring: JourneyListQuerySchema, response: { 200: JourneyListSchema, ...errors(400, 401, 403) } }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const page = await listJourneys(db, workspaceId, request.query);
      return { items: await Promise.all(page.items.map((journey) => view(workspaceId, journey))), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/journeys/:key',
    {
      config: read,
      schema: docs('A journey with its draft definition, status and live version', {
        params: JourneyKeyParams,
        response: { 200: JourneySchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return view(workspaceId, await getJourney(db, workspaceId, request.params.key));
    },
  );

  app.patch(
    '/v1/journeys/:key',
    {
      config: write,
      schema: docs('Edit the name, description or draft; a live journey keeps running its published version until the draft is published', {
        params: JourneyKeyParams,
        body: UpdateJourneySchema,
        response: { 200: JourneySchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return view(workspaceId, await updateJourney(db, workspaceId, request.params.key, request.body));
    },
  );

  app.post(
    '/v1/journeys/:key/validate',
    {
      config: read,
      schema: docs('Every problem of a definition (the draft when none is given), each naming its node and field', {
        params: JourneyKeyParams,
        body: ValidateBodySchema,
        response: { 200: ProblemsSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      return journeyCheck(db, workspaceId, request.body.definition ?? journey.draft, checks);
    },
  );

  app.post(
    '/v1/journeys/:key/publish',
    {
      config: write,
      schema: docs('Freeze the draft as a new version and make it live for new entries; running instances stay on their version unless `migrate: "all"` moves them (by node id or mapping)', {
        params: JourneyKeyParams,
        body: PublishBodySchema,
        response: { 200: PublishResultSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const result = await publishJourney(db, workspaceId, request.params.key, now(), checks, request.body);
      return { ...result, journey: await view(workspaceId, result.journey) };
    },
  );

  app.post(
    '/v1/journeys/:key/migrate',
    {
      config: write,
      schema: docs('Move running instances of earlier versions (all, or fromVersion) onto the live version, by node id or mapping', {
        params: JourneyKeyParams,
        body: MigrateBodySchema,
        response: { 200: MigrateResultSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return migrateJourney(db, workspaceId, request.params.key, now(), request.body);
    },
  );

  for (const [action, change, summary] of [
    ['pause', pauseJourney, 'Pause: instances hold where they are, nothing enters and nothing is sent'],
    ['resume', resumeJourney, 'Resume a paused journey: held instances continue (overdue ones at once)'],
  ] as const) {
    app.post(
      `/v1/journeys/:key/${action}`,
      { config: write, schema: docs(summary, { params: JourneyKeyParams, response: { 200: JourneySchema, ...errors(400, 401, 403, 404, 409) } }) },
      async (request) => {
        const workspaceId = await workspaceOf(request);
        return view(workspaceId, await change(db, workspaceId, request.params.key));
      },
    );
  }

  app.post(
    '/v1/journeys/:key/archive',
    {
      config: write,
      schema: docs('Stop the journey for good: every running instance exits (reason `stopped`)', {
        params: JourneyKeyParams,
        response: { 200: ArchiveResultSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const result = await archiveJourney(db, workspaceId, request.params.key, now());
      return { journey: await view(workspaceId, result.journey), stopped: result.stopped, cancelledMessages: result.cancelledMessages };
    },
  );

  app.post(
    '/v1/journeys/:key/entries',
    {
      config: write,
      schema: docs('Enter a profile now (an API entry, or a test of any live journey); entry rules and caps apply', {
        params: JourneyKeyParams,
        body: TestEntryBodySchema,
        response: { 200: TestEntryResultSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      const { profileId } = await locateProfile(db, workspaceId, request.body.profile, 'profile');
      const at = now();
      await prepareTransitionStorage(db, at);
      const [result] = await withTransaction(db, (client) =>
        enterProfiles(client, workspaceId, journey.id, [{ profileId, entry: 'api', ...(request.body.variables ? { variables: request.body.variables } : {}) }], at),
      );
      return { profileId, instanceId: result?.instanceId ?? null, refused: result?.refused ?? null };
    },
  );

  app.post(
    '/v1/journeys/:key/dry-run',
    {
      config: write,
      schema: docs(
        'What the journey would do for a profile starting now: the path, each wait with its wake time, every message rendered with the guards that would skip or defer it. Sends and writes nothing',
        { params: JourneyKeyParams, body: DryRunBodySchema, response: { 200: DryRunResultSchema, ...errors(400, 401, 403, 404) } },
      ),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      const { profileId } = await locateProfile(db, workspaceId, request.body.profile, 'profile');
      const useDraft = request.body.version === 'draft' || journey.currentVersion === null;
      let version: JourneyVersion;
      if (useDraft) {
        refuseProblems(await journeyProblems(db, workspaceId, journey.draft, checks));
        version = { journeyId: journey.id, journeyKey: journey.key, version: 0, definition: journey.draft };
      } else {
        version = await loadVersion(db, workspaceId, journey.id, journey.currentVersion!);
      }
      const start = request.body.start ? new Date(request.body.start) : now();
      const result = await dryRun(db, workspaceId, version, profileId, {
        start,
        ...(request.body.assume ? { assume: request.body.assume } : {}),
        ...(request.body.variables ? { variables: request.body.variables } : {}),
      });
      return { ...result, version: useDraft ? ('draft' as const) : version.version };
    },
  );

  app.get(
    '/v1/journeys/:key/instances',
    {
      config: read,
      schema: docs('Instances of the journey, newest entry first; filter by status or profile', {
        params: JourneyKeyParams,
        querystring: InstanceListQuerySchema,
        response: { 200: InstanceListSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      const { profile, ...rest } = request.query;
      const profileId = profile === undefined ? undefined : (await locateProfile(db, workspaceId, profile, 'profile')).profileId;
      return listInstances(db, workspaceId, journey.id, { ...rest, ...(profileId ? { profileId } : {}) });
    },
  );

  app.get(
    '/v1/journeys/:key/instances/:instanceId',
    {
      config: read,
      schema: docs('One instance: where it is, when it wakes next, and the path it took with what happened at each node', {
        params: InstanceParams,
        response: { 200: InstanceDetailSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      const instance = await getInstance(db, workspaceId, journey.id, request.params.instanceId);
      const [path, messages] = await Promise.all([instancePath(db, workspaceId, instance.id), listMessages(db, workspaceId, { instanceId: instance.id })]);
      return {
        instance: toInstanceView(instance),
        messages: messages.map((m) => ({
          messageId: m.messageId,
          nodeId: m.origin?.nodeId ?? null,
          channel: m.channel,
          templateKey: m.templateKey,
          status: m.status,
          reason: m.reason ?? null,
          createdAt: m.createdAt.toISOString(),
          updatedAt: m.updatedAt.toISOString(),
        })),
        path,
      };
    },
  );

  app.post(
    '/v1/journeys/:key/instances/:instanceId/remove',
    {
      config: write,
      schema: docs('Remove a profile from the journey: its instance exits (reason `removed`)', {
        params: InstanceParams,
        response: { 200: InstanceSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      await getInstance(db, workspaceId, journey.id, request.params.instanceId);
      const at = now();
      await prepareTransitionStorage(db, at);
      await withTransaction(db, async (client) => {
        await endInstances(client, workspaceId, { journeyId: journey.id, instanceId: request.params.instanceId }, 'removed', 'removed by an operator', at);
        await cancelMessages(client, workspaceId, { instanceId: request.params.instanceId }, 'removed_from_journey');
      });
      return toInstanceView(await getInstance(db, workspaceId, journey.id, request.params.instanceId));
    },
  );

  app.post(
    '/v1/journeys/:key/instances/:instanceId/skip-wait',
    {
      config: write,
      schema: docs('Skip the wait an instance is in: a delay ends now; a wait or segment_wait takes its timedOut branch (or happened) now', {
        params: InstanceParams,
        body: SkipWaitBodySchema,
        response: { 200: InstanceSchema, ...errors(400, 401, 403, 404, 409) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      const journey = await getJourney(db, workspaceId, request.params.key);
      await skipWait(db, workspaceId, journey.id, request.params.instanceId, request.body.branch ?? 'timedOut', now());
      return toInstanceView(await getInstance(db, workspaceId, journey.id, request.params.instanceId));
    },
  );

  app.get(
    '/v1/journeys/:key/versions',
    {
      config: read,
      schema: docs('Every published version with its frozen definition and its instances per status, newest first', {
        params: JourneyKeyParams,
        response: { 200: JourneyVersionListSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return listVersions(db, workspaceId, await getJourney(db, workspaceId, request.params.key));
    },
  );

  app.get(
    '/v1/journeys/:key/stats',
    {
      config: read,
      schema: docs('Live counts per node of the published version (entered, waiting, exited, converted) and instances per version', {
        params: JourneyKeyParams,
        response: { 200: NodeCountsSchema, ...errors(400, 401, 403, 404) },
      }),
    },
    async (request) => {
      const workspaceId = await workspaceOf(request);
      return nodeCounts(db, workspaceId, await getJourney(db, workspaceId, request.params.key));
    },
  );
};
