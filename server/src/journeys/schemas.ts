import { Type, type Static } from '@sinclair/typebox';
import { NextCursor, PageQuery } from '../api/pagination.ts';
import { JourneyDefinitionSchema } from './definition.ts';

const Instant = Type.String({ format: 'date-time' });
const NullableInstant = Type.Union([Instant, Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

export const JourneyKeySchema = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$', description: 'Letters, digits, _ . -' });
export const JourneyKeyParams = Type.Object({ key: JourneyKeySchema });
export const InstanceParams = Type.Object({ key: JourneyKeySchema, instanceId: Type.String({ format: 'uuid' }) });

const JourneyStatusSchema = Type.Union([Type.Literal('draft'), Type.Literal('published'), Type.Literal('paused'), Type.Literal('archived')]);

export const ProblemSchema = Type.Object({
  node: Type.Optional(Type.String()),
  field: Type.String({ description: 'Dotted path from the definition root, e.g. nodes.3.next' }),
  message: Type.String(),
  templateField: Type.Optional(Type.String({ description: "Template warnings: the template's field, e.g. en.subject" })),
  name: Type.Optional(Type.String({ description: 'Template warnings: the variable at fault, e.g. traits.frist_name' })),
});
const WarningsSchema = Type.Array(ProblemSchema, {
  description: 'What publishing does not refuse but the operator should see: traits.* names in templates that no identify call, computed trait or profile has',
});

export const CreateJourneySchema = Type.Object(
  {
    key: JourneyKeySchema,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    definition: JourneyDefinitionSchema,
  },
  { additionalProperties: false },
);
export type CreateJourney = Static<typeof CreateJourneySchema>;

export const UpdateJourneySchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    definition: Type.Optional(JourneyDefinitionSchema),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const ValidateBodySchema = Type.Object(
  { definition: Type.Optional(JourneyDefinitionSchema) },
  { additionalProperties: false, description: 'A definition to check; the journey\'s draft when absent' },
);

export const JourneySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  key: Type.String(),
  name: Type.String(),
  description: NullableString,
  status: JourneyStatusSchema,
  currentVersion: Type.Union([Type.Integer(), Type.Null()], { description: 'The live (last published) version' }),
  enteredCount: Type.Integer(),
  definition: JourneyDefinitionSchema,
  problems: Type.Array(ProblemSchema, { description: 'What publishing the draft would refuse (empty: publishable)' }),
  warnings: WarningsSchema,
  createdAt: Instant,
  updatedAt: Instant,
});
export type JourneyView = Static<typeof JourneySchema>;

export const JourneyListQuerySchema = Type.Object({ status: Type.Optional(JourneyStatusSchema), ...PageQuery }, { additionalProperties: false });
export const JourneyListSchema = Type.Object({ items: Type.Array(JourneySchema), nextCursor: NextCursor });

export const ProblemsSchema = Type.Object({ problems: Type.Array(ProblemSchema), warnings: WarningsSchema });

const MappingSchema = Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.String({ minLength: 1, maxLength: 64 }), {
  description: 'Node mapping for migration: running instances at a key node continue at the value node of the live version (same kind); other nodes map by id',
});
const ExitUnmappedSchema = Type.Boolean({
  description:
    'When migrating: end (reason exited) the instances whose node has no counterpart of the same kind in the live version. Without it such instances refuse the migration (409 unmapped_instances)',
});

export const PublishBodySchema = Type.Object(
  {
    migrate: Type.Optional(
      Type.Union([Type.Literal('none'), Type.Literal('all')], {
        description: 'none (default): running instances stay on the version they started on; all: they move to the new version (by node id or mapping)',
      }),
    ),
    mapping: Type.Optional(MappingSchema),
    exitUnmapped: Type.Optional(ExitUnmappedSchema),
  },
  { additionalProperties: false },
);

export const PublishResultSchema = Type.Object({
  journey: JourneySchema,
  version: Type.Integer(),
  migrated: Type.Integer({ description: 'Running instances moved onto the new version (migrate: all)' }),
  exited: Type.Integer({ description: 'Running instances ended because their node is not in the new version (migrate: all, exitUnmapped)' }),
  stayed: Type.Integer({ description: 'Running instances left on earlier versions' }),
  warnings: WarningsSchema,
});

export const MigrateBodySchema = Type.Object(
  {
    fromVersion: Type.Optional(Type.Integer({ minimum: 1, description: 'Only the instances of this version; every earlier version when absent' })),
    mapping: Type.Optional(MappingSchema),
    exitUnmapped: Type.Optional(ExitUnmappedSchema),
  },
  { additionalProperties: false },
);

export const MigrateResultSchema = Type.Object({
  version: Type.Integer({ description: 'The live version the instances moved to' }),
  migrated: Type.Integer(),
  exited: Type.Integer(),
  stayed: Type.Integer({ description: 'Running instances still on other versions' }),
});

export const ArchiveResultSchema = Type.Object({
  journey: JourneySchema,
  stopped: Type.Integer({ description: 'Running instances ended (reason `stopped`)' }),
  cancelledMessages: Type.Integer({ description: "The journey's queued or held messages cancelled (reason `journey_stopped`)" }),
});

export const TestEntryBodySchema = Type.Object(
  {
    profile: Type.String({ minLength: 1, description: 'A profile id or `<type>:<value>`' }),
    variables: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Available to templates as event variables' })),
  },
  { additionalProperties: false },
);
export const TestEntryResultSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  instanceId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  refused: Type.Union([
    Type.Literal('not_live'),
    Type.Literal('already_in'),
    Type.Literal('reentry'),
    Type.Literal('cap'),
    Type.Literal('max_concurrent'),
    Type.Null(),
  ]),
});

const InstanceStatusSchema = Type.Union([Type.Literal('active'), Type.Literal('completed'), Type.Literal('converted'), Type.Literal('exited')]);
export const InstanceSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  profileId: Type.String({ format: 'uuid' }),
  version: Type.Integer(),
  status: InstanceStatusSchema,
  currentNode: Type.String(),
  waiting: Type.Boolean({ description: 'At a delay or wait, until nextDueAt or the event' }),
  nextDueAt: NullableInstant,
  group: Type.Union([Type.Literal('treatment'), Type.Literal('holdout')]),
  entry: Type.String(),
  enteredAt: Instant,
  endedAt: NullableInstant,
  endReason: NullableString,
  endDetail: NullableString,
});
export type InstanceView = Static<typeof InstanceSchema>;

export const InstanceListQuerySchema = Type.Object(
  {
    status: Type.Optional(InstanceStatusSchema),
    profile: Type.Optional(Type.String({ minLength: 1 })),
    version: Type.Optional(Type.Integer({ minimum: 1, description: 'Only instances walking this version' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export const InstanceListSchema = Type.Object({ items: Type.Array(InstanceSchema), nextCursor: NextCursor });

export const StepSchema = Type.Object({
  step: Type.Integer(),
  nodeId: Type.String(),
  kind: Type.String(),
  version: Type.Integer(),
  at: Instant,
  outcome: Type.String(),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});

export const InstanceMessageSchema = Type.Object({
  messageId: Type.String(),
  nodeId: NullableString,
  channel: Type.String(),
  templateKey: Type.String(),
  status: Type.String({ description: 'queued, held, sending, sent, delivered, opened, clicked, failed, skipped, cancelled' }),
  reason: NullableString,
  createdAt: Instant,
  updatedAt: Instant,
});

export const SkipWaitBodySchema = Type.Object(
  {
    branch: Type.Optional(
      Type.Union([Type.Literal('happened'), Type.Literal('timedOut')], {
        description: 'For a wait or segment_wait: the branch to take (timedOut by default); a delay simply ends',
      }),
    ),
  },
  { additionalProperties: false },
);

export const InstanceDetailSchema = Type.Object({
  instance: InstanceSchema,
  messages: Type.Array(InstanceMessageSchema, { description: "Every message the instance queued, with its status (channels' outbox)" }),
  path: Type.Array(StepSchema, { description: 'Every node the instance arrived at, in order, with what happened there' }),
});

const VERSION_INSTANCE_FIELDS = {
  active: Type.Integer({ description: 'Running on this version now' }),
  completed: Type.Integer(),
  converted: Type.Integer(),
  exited: Type.Integer({ description: 'Exited, stopped or removed' }),
};
export const VersionInstancesSchema = Type.Object(VERSION_INSTANCE_FIELDS, { description: 'Instances per status that walk (or walked) this version' });

export const NodeCountsSchema = Type.Object({
  version: Type.Union([Type.Integer(), Type.Null()]),
  nodes: Type.Array(
    Type.Object({
      nodeId: Type.String(),
      kind: Type.String(),
      entered: Type.Integer({ description: 'Arrivals at the node (all versions)' }),
      waiting: Type.Integer({ description: 'Running instances at the node now' }),
      exited: Type.Integer({ description: 'Instances that ended at the node (completed, exited, stopped, removed)' }),
      converted: Type.Integer({ description: 'Instances converted by a goal while at the node' }),
    }),
  ),
  edges: Type.Array(
    Type.Object({ source: Type.String(), target: Type.String(), count: Type.Integer({ description: 'Moves from source to target (all versions, by node id)' }) }),
    { description: 'Traffic on each edge: how many times an instance went from one node to the next' },
  ),
  versions: Type.Array(Type.Object({ version: Type.Integer(), ...VERSION_INSTANCE_FIELDS }), {
    description: 'Instances per version, newest first: running instances stay on the version they started on unless migrated',
  }),
});

export const DryRunBodySchema = Type.Object(
  {
    profile: Type.String({ minLength: 1, description: 'A profile id or `<type>:<value>`' }),
    version: Type.Optional(
      Type.Union([Type.Literal('live'), Type.Literal('draft')], { description: 'The live version (default when there is one) or the draft' }),
    ),
    start: Type.Optional(Type.String({ format: 'date-time', description: 'The simulated start; now when absent' })),
    assume: Type.Optional(
      Type.Record(Type.String(), Type.Union([Type.Literal('happened'), Type.Literal('timedOut')]), {
        description: 'Per wait or segment_wait node id: `happened` assumes its event or segment change comes at once; otherwise it times out',
      }),
    ),
    variables: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Entry variables (trigger event properties) for templates' })),
  },
  { additionalProperties: false },
);

const DryRunPreview = {
  decision: Type.Union([Type.Literal('send'), Type.Literal('skip'), Type.Literal('error')]),
  reason: Type.Optional(Type.String({ description: 'Why a guard would skip it: no_consent, unsubscribed, frequency_cap, suppressed …' })),
  sendAt: Type.Optional(Instant),
  deferredBy: Type.Optional(Type.String({ description: 'quiet_hours (or pacing) when it would wait' })),
  locale: Type.Optional(Type.String()),
  fields: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'The rendered template fields (subject, html, text …)' })),
  error: Type.Optional(Type.String()),
};

export const DryRunResultSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  version: Type.Union([Type.Integer(), Type.Literal('draft')]),
  group: Type.Union([Type.Literal('treatment'), Type.Literal('holdout')]),
  start: Instant,
  path: Type.Array(
    Type.Object({
      step: Type.Integer(),
      at: Instant,
      nodeId: Type.String(),
      kind: Type.String(),
      outcome: Type.String({ description: 'As in an instance path; a send is would_send or would_skip' }),
      detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    }),
  ),
  waits: Type.Array(
    Type.Object({
      nodeId: Type.String(),
      kind: Type.String(),
      from: Instant,
      until: Instant,
      ends: Type.Union([Type.Literal('next'), Type.Literal('timed_out'), Type.Literal('happened')]),
    }),
  ),
  messages: Type.Array(
    Type.Object({ nodeId: Type.String(), at: Instant, channel: Type.String(), templateKey: Type.String(), purpose: Type.String(), ...DryRunPreview }),
  ),
  traits: Type.Array(Type.Object({ nodeId: Type.String(), at: Instant, values: Type.Record(Type.String(), Type.Unknown()) })),
  end: Type.Union([Type.Object({ reason: Type.String(), detail: NullableString, at: Instant }), Type.Null()]),
  truncated: Type.Boolean(),
});

export const JourneyVersionListSchema = Type.Object({
  items: Type.Array(
    Type.Object({ version: Type.Integer(), publishedAt: Instant, live: Type.Boolean(), instances: VersionInstancesSchema, definition: JourneyDefinitionSchema }),
    { description: 'Every published version, newest first' },
  ),
});
