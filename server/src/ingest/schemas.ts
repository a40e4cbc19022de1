import { Type, type Static } from '@sinclair/typebox';

export const EVENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Limits from the Segment HTTP API spec. */
export const LIMITS = {
  messageIdLength: 100,
  eventBytes: 32 * 1024,
  batchBytes: 500 * 1024,
  batchEvents: 2_500,
} as const;

const Id = Type.Union([Type.String(), Type.Number()], { description: 'String (numbers are accepted and stored as strings)' });
const Timestamp = Type.String({ format: 'date-time', description: 'ISO-8601 date-time' });
const Dict = Type.Record(Type.String(), Type.Unknown());

/**
 * One event as a Segment-compatible client sends it. Every call type shares this shape; which
 * fields are required depends on `type` and is checked in normalize.ts, so one invalid item of a
 * batch can be quarantined without failing the others. Unknown top-level fields are kept.
 */
export const EventSchema = Type.Object(
  {
    type: Type.Optional(Type.Union(EVENT_TYPES.map((t) => Type.Literal(t)))),
    messageId: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.messageIdLength })),
    userId: Type.Optional(Type.Union([Id, Type.Null()])),
    anonymousId: Type.Optional(Type.Union([Id, Type.Null()])),
    previousId: Type.Optional(Id),
    groupId: Type.Optional(Id),
    event: Type.Optional(Type.String({ description: 'Event name (track)' })),
    name: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Page or screen name' })),
    category: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    properties: Type.Optional(Dict),
    traits: Type.Optional(Dict),
    context: Type.Optional(Dict),
    integrations: Type.Optional(Dict),
    timestamp: Type.Optional(Timestamp),
    originalTimestamp: Type.Optional(Timestamp),
    sentAt: Type.Optional(Timestamp),
  },
  { additionalProperties: true },
);
export type IncomingEvent = Static<typeof EventSchema>;

export const BatchSchema = Type.Object(
  {
    batch: Type.Array(Type.Unknown(), { description: `Events (at most ${LIMITS.batchEvents}); each is validated on its own` }),
    context: Type.Optional(Dict),
    integrations: Type.Optional(Dict),
    sentAt: Type.Optional(Timestamp),
    writeKey: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const RejectedItemSchema = Type.Object({
  index: Type.Integer(),
  messageId: Type.Union([Type.String(), Type.Null()]),
  error: Type.String(),
  field: Type.Union([Type.String(), Type.Null()]),
  message: Type.String(),
  quarantineId: Type.String({ format: 'uuid' }),
});

export const IngestResponseSchema = Type.Object({
  success: Type.Boolean(),
  accepted: Type.Integer({ description: 'Events stored by this request' }),
  duplicates: Type.Integer({ description: 'Events whose messageId was already stored (not stored again)' }),
  rejected: Type.Array(RejectedItemSchema, { description: 'Invalid items, kept in quarantine' }),
});
export type IngestResponse = Static<typeof IngestResponseSchema>;
