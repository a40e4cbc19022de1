import { Type, type Static } from '@sinclair/typebox';
import { decodeCursor, encodeCursor, NextCursor, PageQuery } from '../api/pagination.ts';
import type { Queryable } from '../storage/database.ts';
import { EVENT_TYPES, type EventType } from './schemas.ts';

const EventTypeSchema = Type.Union(EVENT_TYPES.map((type) => Type.Literal(type)));
const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableObject = Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]);
const NullableInstant = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const StoredEventSchema = Type.Object({
  messageId: Type.String(),
  type: EventTypeSchema,
  event: NullableString,
  name: NullableString,
  category: NullableString,
  userId: NullableString,
  anonymousId: NullableString,
  previousId: NullableString,
  groupId: NullableString,
  properties: NullableObject,
  traits: NullableObject,
  context: NullableObject,
  integrations: NullableObject,
  extra: Type.Union([Type.Record(Type.String(), Type.Unknown({ description: 'Top-level fields outside the Segment spec' })), Type.Null()]),
  sourceId: Type.String({ format: 'uuid' }),
  timestamp: Type.String({ format: 'date-time', description: 'Event time, corrected for the client clock' }),
  originalTimestamp: NullableInstant,
  sentAt: NullableInstant,
  receivedAt: Type.String({ format: 'date-time' }),
});
export type StoredEvent = Static<typeof StoredEventSchema>;

export const EventListQuerySchema = Type.Object(
  {
    type: Type.Optional(EventTypeSchema),
    event: Type.Optional(Type.String({ minLength: 1, description: 'Track event name' })),
    userId: Type.Optional(Type.String({ minLength: 1 })),
    anonymousId: Type.Optional(Type.String({ minLength: 1 })),
    sourceId: Type.Optional(Type.String({ format: 'uuid' })),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Only events at or after this time' })),
    until: Type.Optional(Type.String({ format: 'date-time', description: 'Only events before this time' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type EventListQuery = Static<typeof EventListQuerySchema>;

export const EventListSchema = Type.Object({ items: Type.Array(StoredEventSchema), nextCursor: NextCursor });

export interface EventRow {
  message_id: string;
  type: EventType;
  event: string | null;
  name: string | null;
  category: string | null;
  user_id: string | null;
  anonymous_id: string | null;
  previous_id: string | null;
  group_id: string | null;
  properties: Record<string, unknown> | null;
  traits: Record<string, unknown> | null;
  context: Record<string, unknown> | null;
  integrations: Record<string, unknown> | null;
  extra: Record<string, unknown> | null;
  source_id: string;
  timestamp: Date;
  original_timestamp: Date | null;
  sent_at: Date | null;
  received_at: Date;
  seq: number;
  cursor_at: string;
}

/** The columns `toEvent` reads, plus the page cursor's instant in PostgreSQL's precision. */
export const STORED_EVENT_COLUMNS = `message_id, type, event, name, category, user_id, anonymous_id, previous_id, group_id,
  properties, traits, context, integrations, extra, source_id, timestamp, original_timestamp, sent_at, received_at, seq,
  to_json(timestamp) #>> '{}' as cursor_at`;

export const toEvent = (row: EventRow): StoredEvent => ({
  messageId: row.message_id,
  type: row.type,
  event: row.event,
  name: row.name,
  category: row.category,
  userId: row.user_id,
  anonymousId: row.anonymous_id,
  previousId: row.previous_id,
  groupId: row.group_id,
  properties: row.properties,
  traits: row.traits,
  context: row.context,
  integrations: row.integrations,
  extra: row.extra,
  sourceId: row.source_id,
  timestamp: row.timestamp.toISOString(),
  originalTimestamp: row.original_timestamp?.toISOString() ?? null,
  sentAt: row.sent_at?.toISOString() ?? null,
  receivedAt: row.received_at.toISOString(),
});

/**
 * A workspace's stored events, newest (by event time) first, so a developer can watch events
 * land. Walks the primary key (workspace_id, timestamp, seq) backwards, one page at a time.
 */
export async function listRecentEvents(
  db: Queryable,
  workspaceId: string,
  query: EventListQuery,
): Promise<{ items: StoredEvent[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  const [cursorAt, cursorSeq] = query.cursor ? decodeCursor(query.cursor, ['instant', 'integer']) : [null, null];
  const { rows } = await db.query<EventRow>(
    `select ${STORED_EVENT_COLUMNS}
       from events
      where workspace_id = $1
        and ($2::text is null or type = $2)
        and ($3::text is null or event = $3)
        and ($4::text is null or user_id = $4)
        and ($5::text is null or anonymous_id = $5)
        and ($6::uuid is null or source_id = $6)
        and ($7::timestamptz is null or timestamp >= $7)
        and ($8::timestamptz is null or timestamp < $8)
        and ($9::timestamptz is null or (timestamp, seq) < ($9::timestamptz, $10::bigint))
      order by timestamp desc, seq desc
      limit $11`,
    [
      workspaceId,
      query.type ?? null,
      query.event ?? null,
      query.userId ?? null,
      query.anonymousId ?? null,
      query.sourceId ?? null,
      query.since ?? null,
      query.until ?? null,
      cursorAt,
      cursorSeq,
      limit + 1,
    ],
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map(toEvent),
    nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at, String(last.seq)]) : null,
  };
}
