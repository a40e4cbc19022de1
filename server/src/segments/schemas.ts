import { Type, type Static } from '@sinclair/typebox';
import { NextCursor, PageQuery } from '../api/pagination.ts';
import { ConditionSchema } from './ast.ts';

const Instant = Type.String({ format: 'date-time' });
const NullableInstant = Type.Union([Instant, Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

// The database's rule (0007_segments.sql): no double quote, backslash or control character, so
// `in_segment("<key>")` always prints and parses.
export const SegmentKeySchema = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[^"\\\\\\u0000-\\u001f\\u007f-\\u009f]+$',
  description: 'What in_segment("…") and the API call the segment: up to 64 characters, no quotes, backslashes or control characters',
});

export const SEGMENT_KINDS = ['realtime', 'periodic', 'static'] as const;
export type SegmentKind = (typeof SEGMENT_KINDS)[number];
const KindSchema = Type.Union(SEGMENT_KINDS.map((kind) => Type.Literal(kind)), {
  description: 'realtime: kept fresh by the worker as data arrives; periodic: recomputed on a cron schedule; static: a snapshot or an uploaded list',
});

// The AST (segments/ast.ts); give this or `text`.
const DefinitionSchema = ConditionSchema;
const TextSchema = Type.String({
  minLength: 1,
  maxLength: 20_000,
  description: 'The segment in the text language, e.g. `trait.city = "上海" and event("Order Completed").count(within 90d) >= 3`; give this or `definition`',
});
const ScheduleSchema = Type.String({
  minLength: 1,
  maxLength: 100,
  description: 'Periodic segments only: a 5-field cron expression (minute hour day-of-month month day-of-week) or @daily/@hourly/@weekly/@monthly/@yearly, read in the workspace time zone, e.g. `0 2 * * *` = daily at 02:00',
});

// Write keys are public: whoever knows a visitor's anonymous id or user id can ask for these keys.
const ClientVisibleSchema = Type.Boolean({
  default: false,
  description:
    'Let the SDK (write key) read this segment\'s key for the current visitor, for personalisation. Only for segments whose key is harmless to reveal to anyone who knows the visitor\'s id',
});

export const CreateSegmentSchema = Type.Object(
  {
    key: SegmentKeySchema,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    kind: KindSchema,
    definition: Type.Optional(DefinitionSchema),
    text: Type.Optional(TextSchema),
    schedule: Type.Optional(ScheduleSchema),
    isTag: Type.Optional(Type.Boolean({ default: false, description: 'Show the segment as a behaviour tag on the profile' })),
    template: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The tag library entry this segment was made from' })),
    clientVisible: Type.Optional(ClientVisibleSchema),
  },
  { additionalProperties: false },
);
export type CreateSegment = Static<typeof CreateSegmentSchema>;

export const UpdateSegmentSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    kind: Type.Optional(KindSchema),
    definition: Type.Optional(DefinitionSchema),
    text: Type.Optional(TextSchema),
    schedule: Type.Optional(Type.Union([ScheduleSchema, Type.Null()])),
    isTag: Type.Optional(Type.Boolean()),
    clientVisible: Type.Optional(ClientVisibleSchema),
    status: Type.Optional(
      Type.Union([Type.Literal('active'), Type.Literal('paused')], {
        description: 'paused: membership is frozen (no real-time or scheduled evaluation); active again recomputes it',
      }),
    ),
  },
  { additionalProperties: false },
);
export type UpdateSegment = Static<typeof UpdateSegmentSchema>;

export const IssueSchema = Type.Object({
  path: Type.String({ description: 'JSON pointer into the definition' }),
  message: Type.String(),
  suggestion: Type.Optional(Type.String()),
});

export const SegmentSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  key: Type.String(),
  name: Type.String(),
  description: NullableString,
  kind: KindSchema,
  status: Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('archived')]),
  isTag: Type.Boolean(),
  clientVisible: Type.Boolean({ description: 'The visitor\'s own SDK may read whether they are in it (GET /v1/visitor/segments)' }),
  template: NullableString,
  definition: Type.Unknown({ description: 'The JSON AST; null for a static segment of uploaded members' }),
  text: Type.Union([Type.String(), Type.Null()], { description: 'The canonical text form of the definition' }),
  schedule: NullableString,
  timeZone: Type.String({ description: 'The workspace time zone the schedule is read in' }),
  nextRunAt: NullableInstant,
  state: Type.Union([Type.Literal('computing'), Type.Literal('ready'), Type.Literal('failed')], {
    description: 'computing: a full evaluation is due or running; ready: membership reflects this version; failed: see lastError',
  }),
  lastError: NullableString,
  computedAt: NullableInstant,
  memberCount: Type.Integer(),
  version: Type.Integer({ description: 'Increases with every edit; transitions record the version that caused them' }),
  createdAt: Instant,
  updatedAt: Instant,
  warnings: Type.Optional(Type.Array(IssueSchema, { description: 'Events and traits the workspace has never seen, with the closest known name' })),
});
export type SegmentView = Static<typeof SegmentSchema>;

export const SegmentListQuerySchema = Type.Object(
  {
    kind: Type.Optional(KindSchema),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('archived')], { description: 'Default: all but archived' })),
    isTag: Type.Optional(Type.Boolean()),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type SegmentListQuery = Static<typeof SegmentListQuerySchema>;
export const SegmentListSchema = Type.Object({ items: Type.Array(SegmentSchema), nextCursor: NextCursor });

export const SegmentKeyParams = Type.Object({ key: SegmentKeySchema });

export const ComputeOutcomeSchema = Type.Object({
  key: Type.String(),
  state: Type.Union([Type.Literal('ready'), Type.Literal('failed'), Type.Literal('skipped')]),
  entered: Type.Integer(),
  exited: Type.Integer(),
  memberCount: Type.Integer(),
  durationMs: Type.Number(),
  error: Type.Optional(Type.String()),
});
export const RefreshResultSchema = Type.Object({
  segment: SegmentSchema,
  computed: Type.Array(ComputeOutcomeSchema, { description: 'The segment, then the segments that use it, in the order they were recomputed' }),
});

export const PreviewBodySchema = Type.Object(
  {
    definition: Type.Optional(DefinitionSchema),
    text: Type.Optional(TextSchema),
    sampleSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 20 })),
  },
  { additionalProperties: false },
);
export type PreviewBody = Static<typeof PreviewBodySchema>;

const NullableInteger = (description: string) => Type.Union([Type.Integer(), Type.Null()], { description });

export const PreviewSchema = Type.Object({
  estimatedSize: Type.Integer({
    description:
      'Counted (method exact), or estimated from a random sample of live profiles (sampled: 0 then means none of the sampled profiles matched, not that nobody does; see sizeInterval), or the planner\'s guess (planner)',
  }),
  exact: Type.Boolean({ description: 'true: counted (method exact); false: estimated, because counting took too long' }),
  method: Type.Union([Type.Literal('exact'), Type.Literal('sampled'), Type.Literal('planner')], {
    description:
      'exact: counted; sampled: the definition evaluated on a uniform random sample of live profiles (by profile id), scaled up; planner: no sample finished in time, the query planner\'s row estimate (can be far off)',
  }),
  sizeInterval: Type.Union(
    [
      Type.Object({
        low: Type.Integer(),
        high: Type.Integer(),
        confidence: Type.Number({ description: '0.95 for a sampled estimate (Wilson score interval); 1 when counted' }),
      }),
      Type.Null(),
    ],
    { description: 'Where the size lies; null for the planner\'s guess' },
  ),
  liveProfiles: Type.Integer({ description: 'Live (not merged) profiles of the workspace' }),
  sampledProfiles: NullableInteger('Live profiles the sampled estimate evaluated the definition on (method sampled)'),
  sampledMatches: NullableInteger('How many of them matched (method sampled)'),
  sample: Type.Array(
    Type.Object({
      id: Type.String({ format: 'uuid' }),
      traits: Type.Record(Type.String(), Type.Unknown(), { description: 'The traits the definition reads, plus name, email, phone and city' }),
    }),
  ),
  sampleComplete: Type.Boolean({ description: 'false when more members surely exist than the sample shows and it is shorter than asked' }),
  definition: Type.Unknown(),
  text: Type.String(),
  warnings: Type.Array(IssueSchema),
  durationMs: Type.Number(),
});
export type Preview = Static<typeof PreviewSchema>;

export const IdentifierInputSchema = Type.Object(
  { type: Type.String({ minLength: 1, maxLength: 64 }), value: Type.String({ minLength: 1, maxLength: 1000 }) },
  { additionalProperties: false },
);
export const MAX_LIST_IDENTIFIERS = 100_000;
export const ListUploadSchema = Type.Object(
  {
    identifiers: Type.Array(IdentifierInputSchema, { minItems: 1, maxItems: MAX_LIST_IDENTIFIERS }),
    mode: Type.Union([Type.Literal('add'), Type.Literal('remove'), Type.Literal('replace')], {
      description: 'add: these become members; remove: these stop being members; replace: exactly these are the members',
    }),
  },
  { additionalProperties: false },
);
export type ListUpload = Static<typeof ListUploadSchema>;

const ReportedIdentifier = Type.Object({
  index: Type.Integer({ description: 'Position in the request\'s identifiers' }),
  type: Type.String(),
  value: Type.String(),
  reason: Type.String(),
});
export const ListUploadResultSchema = Type.Object({
  mode: Type.String(),
  received: Type.Integer(),
  matched: Type.Integer({ description: 'Identifiers that found a live profile' }),
  profiles: Type.Integer({ description: 'Distinct profiles they found' }),
  entered: Type.Integer(),
  exited: Type.Integer(),
  memberCount: Type.Integer(),
  unknown: Type.Array(ReportedIdentifier, { description: 'Valid identifiers no live profile has (nothing was done with them)' }),
  invalid: Type.Array(ReportedIdentifier, { description: 'Values the identifier type\'s normaliser refuses, or unknown types' }),
});
export type ListUploadResult = Static<typeof ListUploadResultSchema>;

export const MembersQuerySchema = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const MembersSchema = Type.Object({
  items: Type.Array(Type.Object({ profileId: Type.String({ format: 'uuid' }), enteredAt: Instant })),
  nextCursor: NextCursor,
});

export const TransitionsQuerySchema = Type.Object(
  {
    profile: Type.Optional(Type.String({ minLength: 1, description: 'Only this profile (id or <type>:<value>; includes profiles merged into it)' })),
    transition: Type.Optional(Type.Union([Type.Literal('entered'), Type.Literal('exited')])),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type TransitionsQuery = Static<typeof TransitionsQuerySchema>;
export const TransitionsSchema = Type.Object({
  items: Type.Array(
    Type.Object({
      id: Type.Integer(),
      profileId: Type.String({ format: 'uuid' }),
      transition: Type.Union([Type.Literal('entered'), Type.Literal('exited')]),
      at: Instant,
      cause: Type.String({ description: 'event, expiry, compute, merge or list' }),
      segmentVersion: Type.Integer(),
    }),
  ),
  nextCursor: NextCursor,
});

export const ProfileSegmentsQuerySchema = Type.Object(
  { isTag: Type.Optional(Type.Boolean({ description: 'Only tags (true) or only non-tag segments (false)' })) },
  { additionalProperties: false },
);
export const ProfileSegmentsSchema = Type.Object({
  profileId: Type.String({ format: 'uuid' }),
  mergedFrom: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
  segments: Type.Array(
    Type.Object({ key: Type.String(), name: Type.String(), kind: KindSchema, isTag: Type.Boolean(), enteredAt: Instant }),
  ),
});
