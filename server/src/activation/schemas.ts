import { Type, type Static } from '@sinclair/typebox';
import { NextCursor, PageQuery } from '../api/pagination.ts';

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const Instant = Type.String({ format: 'date-time' });
const IDENTIFIER_TYPE = '^[a-z][a-z0-9_]{0,63}$';

export const DESTINATION_STATUSES = ['active', 'paused'] as const;
export const DestinationStatusSchema = Type.Union(DESTINATION_STATUSES.map((status) => Type.Literal(status)));

/** Delivery settings; every field optional, defaults in destinations.ts (DEFAULT_SETTINGS). */
export const DestinationSettingsSchema = Type.Object(
  {
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, description: 'Changes per request (default 500)' })),
    maxAttempts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 50, description: 'Attempts per batch before it goes to the dead letters (default 8)' }),
    ),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 30_000, description: 'Time allowed for a response (default 10000)' })),
    backoffBaseMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000, description: 'Delay after the first failure; doubles per attempt (default 1000)' })),
    backoffMaxMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000, description: 'Longest delay between attempts (default 600000)' })),
    identifiers: Type.Optional(
      Type.Array(Type.String({ pattern: IDENTIFIER_TYPE }), {
        maxItems: 50,
        uniqueItems: true,
        description: 'Identifier types sent with each change (default: every live identifier of the profile)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type DestinationSettingsInput = Static<typeof DestinationSettingsSchema>;

export const EffectiveSettingsSchema = Type.Object({
  batchSize: Type.Integer(),
  maxAttempts: Type.Integer(),
  timeoutMs: Type.Integer(),
  backoffBaseMs: Type.Integer(),
  backoffMaxMs: Type.Integer(),
  identifiers: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'null: every identifier type' }),
});

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL the batches are POSTed to' });
const Secret = Type.String({ minLength: 16, maxLength: 200, description: 'HMAC key; generated when not given' });

export const CreateDestinationBodySchema = Type.Object(
  {
    name: Name,
    kind: Type.Optional(Type.Literal('webhook')),
    url: Url,
    secret: Type.Optional(Secret),
    status: Type.Optional(DestinationStatusSchema),
    settings: Type.Optional(DestinationSettingsSchema),
  },
  { additionalProperties: false },
);
export type CreateDestinationBody = Static<typeof CreateDestinationBodySchema>;

export const UpdateDestinationBodySchema = Type.Object(
  {
    name: Type.Optional(Name),
    url: Type.Optional(Url),
    status: Type.Optional(DestinationStatusSchema),
    settings: Type.Optional(DestinationSettingsSchema),
    secret: Type.Optional(Secret),
    rotateSecret: Type.Optional(Type.Boolean({ description: 'Generate a new secret; the answer shows it once' })),
  },
  { additionalProperties: false },
);
export type UpdateDestinationBody = Static<typeof UpdateDestinationBodySchema>;

export const DestinationSegmentSchema = Type.Object({
  segment: Type.Object({ id: Type.String({ format: 'uuid' }), key: Type.String(), name: Type.String() }),
  status: DestinationStatusSchema,
  cursor: Type.Integer({ description: 'The last segment transition id delivered' }),
  backfillPending: Type.Boolean({ description: 'Current members (sendExisting) are still being sent' }),
  pendingBatch: Type.Union([
    Type.Object({
      batchId: Type.String({ format: 'uuid' }),
      changes: Type.Integer(),
      attempts: Type.Integer(),
      nextAttemptAt: Nullable(Instant),
      lastError: Nullable(Type.String()),
    }),
    Type.Null(),
  ]),
  lastDeliveredAt: Nullable(Instant),
  lastError: Nullable(Type.String()),
  deliveredBatches: Type.Integer(),
  deliveredChanges: Type.Integer(),
  deadBatches: Type.Integer(),
  createdAt: Instant,
});
export type DestinationSegment = Static<typeof DestinationSegmentSchema>;

export const DestinationSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  kind: Type.Literal('webhook'),
  url: Type.String(),
  status: DestinationStatusSchema,
  settings: EffectiveSettingsSchema,
  secretHint: Type.String({ description: 'The last four characters of the secret' }),
  segments: Type.Array(DestinationSegmentSchema),
  createdAt: Instant,
  updatedAt: Instant,
});
export type Destination = Static<typeof DestinationSchema>;

export const DestinationWithSecretSchema = Type.Composite([
  DestinationSchema,
  Type.Object({ secret: Type.String({ description: 'Shown only when created or rotated' }) }),
]);

export const DestinationListSchema = Type.Object({ items: Type.Array(DestinationSchema) });

export const DestinationParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

export const ConnectSegmentBodySchema = Type.Object(
  {
    segment: Type.String({ minLength: 1, maxLength: 64, description: 'Segment key' }),
    sendExisting: Type.Optional(Type.Boolean({ description: 'Send current members as adds before later changes (default false)' })),
  },
  { additionalProperties: false },
);

export const DestinationSegmentParams = Type.Object({ id: Type.String({ format: 'uuid' }), segment: Type.String({ minLength: 1 }) });

export const DEAD_LETTER_STATUSES = ['dead', 'redelivered', 'discarded'] as const;
const DeadLetterStatusSchema = Type.Union(DEAD_LETTER_STATUSES.map((status) => Type.Literal(status)));

export const DeadLetterSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  destinationId: Type.String({ format: 'uuid' }),
  segmentId: Type.String({ format: 'uuid' }),
  batchId: Type.String({ format: 'uuid' }),
  changes: Type.Integer(),
  attempts: Type.Integer(),
  lastError: Type.String(),
  firstAttemptAt: Instant,
  lastAttemptAt: Instant,
  status: DeadLetterStatusSchema,
  createdAt: Instant,
  resolvedAt: Nullable(Instant),
});
export type DeadLetter = Static<typeof DeadLetterSchema>;

export const DeadLetterDetailSchema = Type.Composite([
  DeadLetterSchema,
  Type.Object({ payload: Type.Unknown({ description: 'The batch body exactly as it was sent' }) }),
]);

export const DeadLetterListQuerySchema = Type.Object(
  { status: Type.Optional(DeadLetterStatusSchema), ...PageQuery },
  { additionalProperties: false },
);
export type DeadLetterListQuery = Static<typeof DeadLetterListQuerySchema>;

export const DeadLetterListSchema = Type.Object({ items: Type.Array(DeadLetterSchema), nextCursor: NextCursor });

export const DeadLetterParams = Type.Object({ id: Type.String({ format: 'uuid' }), deadLetter: Type.String({ format: 'uuid' }) });

export const ExportParams = Type.Object({ key: Type.String({ minLength: 1, maxLength: 64 }) });
export const ExportQuerySchema = Type.Object(
  {
    identifiers: Type.Optional(Type.String({ description: 'Comma-separated identifier types, one column each, e.g. email,phone,user_id' })),
    traits: Type.Optional(Type.String({ description: 'Comma-separated trait keys, one column each (trait.<key>), e.g. city,name' })),
    bom: Type.Optional(Type.Boolean({ description: 'Start with a UTF-8 byte order mark (for spreadsheet programs)' })),
  },
  { additionalProperties: false },
);
