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
  createdAt: Instant,
  updatedAt: Instant,
});
export type JourneyView = Static<typeof JourneySchema>;

export const JourneyListQuerySchema = Type.Object({ status: Type.Optional(JourneyStatusSchema), ...PageQuery }, { additionalProperties: false });
export const JourneyListSchema = Type.Object({ items: Type.Array(JourneySchema), nextCursor: NextCursor });

export const ProblemsSchema = Type.Object({ problems: Type.Array(ProblemSchema) });

export const PublishResultSchema = Type.Object({
  journey: JourneySchema,
  version: Type.Integer(),
  migrated: Type.Integer({ description: 'Running instances moved onto the new version by node id' }),
  exited: Type.Integer({ description: 'Running instances ended because their node is not in the new version' }),
});

export const ArchiveResultSchema = Type.Object({ journey: JourneySchema, stopped: Type.Integer() });

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
  refused: Type.Union([Type.Literal('not_live'), Type.Literal('already_in'), Type.Literal('reentry'), Type.Literal('cap'), Type.Null()]),
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
  { status: Type.Optional(InstanceStatusSchema), profile: Type.Optional(Type.String({ minLength: 1 })), ...PageQuery },
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

export const InstanceDetailSchema = Type.Object({
  instance: InstanceSchema,
  path: Type.Array(StepSchema, { description: 'Every node the instance arrived at, in order, with what happened there' }),
});

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
});

export const JourneyVersionListSchema = Type.Object({
  items: Type.Array(
    Type.Object({ version: Type.Integer(), publishedAt: Instant, definition: JourneyDefinitionSchema }),
    { description: 'Every published version, newest first' },
  ),
});
