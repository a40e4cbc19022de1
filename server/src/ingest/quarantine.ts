import { Type, type Static } from '@sinclair/typebox';
import { decodeCursor, encodeCursor, NextCursor, PageQuery } from '../api/pagination.ts';
import type { Db, Queryable } from '../storage/database.ts';
import { consentRequirement, getCollectionSettings } from '../workspaces/collection-settings.ts';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';
import type { ConsentRequirement } from './consent.ts';
import { normalizeEvent, type NormalizedEvent, type Rejection } from './normalize.ts';
import { EVENT_TYPES, LIMITS, type EventType } from './schemas.ts';
import { storeEvents } from './store.ts';
import { openQuarantineRows } from '../privacy/sealed-payloads.ts';

export const QUARANTINE_STATUSES = ['open', 'replayed', 'discarded'] as const;
const StatusSchema = Type.Union(QUARANTINE_STATUSES.map((status) => Type.Literal(status)));
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const QuarantineErrorSchema = Type.Object({
  error: Type.String(),
  field: Type.Union([Type.String(), Type.Null()]),
  message: Type.String(),
  at: Type.Optional(Type.String({ format: 'date-time', description: 'When a replay attempt failed (absent for the original rejection)' })),
  corrected: Type.Optional(Type.Boolean({ description: 'The failed replay used a corrected payload' })),
});

export const QuarantineItemSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  sourceId: Nullable(Type.String({ format: 'uuid' })),
  endpoint: Type.String({ description: 'Where the item arrived: track, identify, page, screen, group, alias, batch or import' }),
  messageId: Nullable(Type.String()),
  reason: Type.String({ description: 'Why the item is (still) in quarantine, e.g. missing_identity' }),
  field: Nullable(Type.String()),
  errors: Type.Array(QuarantineErrorSchema, { description: 'The original rejection, then every failed replay' }),
  status: StatusSchema,
  receivedAt: Type.String({ format: 'date-time' }),
  resolvedAt: Nullable(Type.String({ format: 'date-time' })),
  replayedMessageId: Nullable(Type.String()),
});
export type QuarantineItem = Static<typeof QuarantineItemSchema>;

export const QuarantineDetailSchema = Type.Composite([
  QuarantineItemSchema,
  Type.Object({
    payload: Type.Unknown({
      description:
        'The item as received (batch defaults merged). Items PostgreSQL refused (storage_rejected) hold the normalized record instead.',
    }),
  }),
]);
export type QuarantineDetail = Static<typeof QuarantineDetailSchema>;

export const QuarantineListQuerySchema = Type.Object(
  {
    status: Type.Optional(StatusSchema),
    reason: Type.Optional(Type.String({ minLength: 1 })),
    sourceId: Type.Optional(Type.String({ format: 'uuid' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type QuarantineListQuery = Static<typeof QuarantineListQuerySchema>;

export const QuarantineListSchema = Type.Object({ items: Type.Array(QuarantineItemSchema), nextCursor: NextCursor });

export const ReplayBodySchema = Type.Object(
  {
    payload: Type.Optional(
      Type.Unknown({ description: 'A corrected event to store instead of the quarantined one; without it the item is replayed as is' }),
    ),
  },
  { additionalProperties: false },
);
export type ReplayBody = Static<typeof ReplayBodySchema>;

export const ReplayResultSchema = Type.Object({
  item: QuarantineItemSchema,
  messageId: Type.String(),
  duplicate: Type.Boolean({ description: 'An event with this messageId was already stored (e.g. a second replay); it was not stored again' }),
});
export type ReplayResult = Static<typeof ReplayResultSchema>;

export const BulkReplayBodySchema = Type.Object(
  {
    reason: Type.Optional(Type.String({ minLength: 1 })),
    sourceId: Type.Optional(Type.String({ format: 'uuid' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 500 })),
  },
  { additionalProperties: false },
);
export type BulkReplayBody = Static<typeof BulkReplayBodySchema>;

export const BulkReplayResultSchema = Type.Object({
  attempted: Type.Integer({ description: 'Open items picked up' }),
  replayed: Type.Integer({ description: 'Items now stored (or found already stored) and marked replayed' }),
  duplicates: Type.Integer({ description: 'Replayed items whose messageId was already stored' }),
  failed: Type.Array(
    Type.Object({ id: Type.String({ format: 'uuid' }), error: Type.String(), field: Type.Union([Type.String(), Type.Null()]), message: Type.String() }),
    { description: 'Items still invalid; they stay open' },
  ),
});
export type BulkReplayResult = Static<typeof BulkReplayResultSchema>;

/** A replay that failed validation (or storage) again: answered 422, the item stays open. */
export class ReplayRejectedError extends Error {
  override name = 'ReplayRejectedError';
  constructor(readonly rejection: Pick<Rejection, 'error' | 'field' | 'message'>) {
    super(rejection.message);
  }
}

interface QuarantineRow {
  id: string;
  source_id: string | null;
  endpoint: string;
  message_id: string | null;
  reason: string;
  field: string | null;
  errors: QuarantineItem['errors'];
  payload: string;
  received_at: Date;
  status: QuarantineItem['status'];
  resolved_at: Date | null;
  replayed_message_id: string | null;
  cursor_at: string;
}

const COLUMNS = `id, source_id, endpoint, message_id, reason, field, errors, payload, received_at, status, resolved_at,
  replayed_message_id, to_json(received_at) #>> '{}' as cursor_at`;

const toItem = (row: QuarantineRow): QuarantineItem => ({
  id: row.id,
  sourceId: row.source_id,
  endpoint: row.endpoint,
  messageId: row.message_id,
  reason: row.reason,
  field: row.field,
  errors: row.errors,
  status: row.status,
  receivedAt: row.received_at.toISOString(),
  resolvedAt: row.resolved_at?.toISOString() ?? null,
  replayedMessageId: row.replayed_message_id,
});

/** The payload column holds JSON text (it keeps what jsonb cannot); anything unparsable is returned as the text. */
function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Quarantined items of a workspace, newest first. */
export async function listQuarantine(
  db: Queryable,
  workspaceId: string,
  query: QuarantineListQuery,
): Promise<{ items: QuarantineItem[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  const [cursorAt, cursorId] = query.cursor ? decodeCursor(query.cursor, ['instant', 'uuid']) : [null, null];
  const { rows } = await db.query<QuarantineRow>(
    `select ${COLUMNS} from quarantine
      where workspace_id = $1
        and ($2::text is null or status = $2)
        and ($3::text is null or reason = $3)
        and ($4::uuid is null or source_id = $4)
        and ($5::timestamptz is null or (received_at, id) < ($5::timestamptz, $6::uuid))
      order by received_at desc, id desc
      limit $7`,
    [workspaceId, query.status ?? null, query.reason ?? null, query.sourceId ?? null, cursorAt, cursorId, limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map(toItem),
    nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at, last.id]) : null,
  };
}

async function findRow(db: Queryable, workspaceId: string, id: string): Promise<QuarantineRow> {
  const { rows } = await db.query<QuarantineRow>(`select ${COLUMNS} from quarantine where workspace_id = $1 and id = $2`, [workspaceId, id]);
  if (!rows[0]) throw new NotFoundError(`Quarantined item "${id}" not found in this workspace`);
  return (await openQuarantineRows(db, workspaceId, rows))[0]!;
}

export async function getQuarantineItem(db: Queryable, workspaceId: string, id: string): Promise<QuarantineDetail> {
  const row = await findRow(db, workspaceId, id);
  return { ...toItem(row), payload: parsePayload(row.payload) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Items PostgreSQL refused were already normalized; their payload is the database record. This
 * turns it back into the Segment shape normalizeEvent reads (absent values left out).
 */
export function recordToPayload(record: Record<string, unknown>): Record<string, unknown> {
  const fields: Array<[string, string]> = [
    ['type', 'type'], ['messageId', 'message_id'], ['event', 'event'], ['name', 'name'], ['category', 'category'],
    ['userId', 'user_id'], ['anonymousId', 'anonymous_id'], ['previousId', 'previous_id'], ['groupId', 'group_id'],
    ['properties', 'properties'], ['traits', 'traits'], ['context', 'context'], ['integrations', 'integrations'],
    ['originalTimestamp', 'original_timestamp'], ['sentAt', 'sent_at'],
  ];
  const payload: Record<string, unknown> = isObject(record.extra) ? { ...record.extra } : {};
  for (const [to, from] of fields) {
    const value = record[from];
    if (value !== null && value !== undefined) payload[to] = value;
  }
  return payload;
}

/** A messageId that is the same on every replay of an item, so replaying twice cannot store it twice. */
function stableMessageId(row: Pick<QuarantineRow, 'id' | 'message_id' | 'replayed_message_id'>): string {
  if (row.replayed_message_id) return row.replayed_message_id;
  if (row.message_id && row.message_id.length <= LIMITS.messageIdLength) return row.message_id;
  return `quarantine-${row.id}`;
}

/** Validates a quarantined item again, as received or as corrected. Pure. */
export function prepareReplay(
  row: Pick<QuarantineRow, 'id' | 'endpoint' | 'reason' | 'payload' | 'received_at' | 'message_id' | 'replayed_message_id'>,
  corrected?: { payload: unknown },
  consent: ConsentRequirement | null = null,
) {
  let payload: unknown = corrected ? corrected.payload : parsePayload(row.payload);
  let receivedAt = row.received_at;
  if (!corrected && row.reason === 'storage_rejected' && isObject(payload)) {
    const receivedAtOfRecord = typeof payload.received_at === 'string' ? new Date(payload.received_at) : null;
    if (receivedAtOfRecord && !Number.isNaN(receivedAtOfRecord.getTime())) receivedAt = receivedAtOfRecord;
    payload = recordToPayload(payload);
  }
  if (isObject(payload) && payload.messageId === undefined) {
    payload = { ...payload, messageId: stableMessageId(row) };
  }
  const type = (EVENT_TYPES as readonly string[]).includes(row.endpoint) ? (row.endpoint as EventType) : undefined;
  return normalizeEvent(payload, { receivedAt, type, historical: row.endpoint === 'import', consent });
}

type Outcome =
  | { id: string; ok: true; messageId: string; duplicate: boolean }
  | { id: string; ok: false; rejection: Pick<Rejection, 'error' | 'field' | 'message'>; corrected: boolean };

/**
 * Replays quarantined rows: validates each again, stores the valid ones under their source
 * (idempotent by messageId), marks them replayed, and records the new error on those still invalid.
 */
async function replayRows(
  db: Db,
  workspaceId: string,
  rows: readonly QuarantineRow[],
  corrected?: { payload: unknown },
): Promise<Outcome[]> {
  const outcomes = new Map<string, Outcome>();
  const groups = new Map<string, { sourceId: string; endpoint: string; items: Array<{ row: QuarantineRow; event: NormalizedEvent }> }>();
  // A replay is held to the workspace's consent requirement as it is now, like a new event.
  const consent = rows.length > 0 ? consentRequirement(await getCollectionSettings(db, workspaceId)) : null;
  for (const row of rows) {
    if (!row.source_id) {
      outcomes.set(row.id, {
        id: row.id,
        ok: false,
        corrected: !!corrected,
        rejection: { error: 'no_source', field: null, message: 'The item arrived without a source, so it has nowhere to be stored' },
      });
      continue;
    }
    const result = prepareReplay(row, corrected, consent);
    if (!result.ok) {
      const { error, field, message } = result.rejection;
      outcomes.set(row.id, { id: row.id, ok: false, corrected: !!corrected, rejection: { error, field, message } });
      continue;
    }
    const groupKey = `${row.source_id}\u0000${row.endpoint}`;
    const group = groups.get(groupKey) ?? { sourceId: row.source_id, endpoint: row.endpoint, items: [] };
    group.items.push({ row, event: result.event });
    groups.set(groupKey, group);
  }

  for (const group of groups.values()) {
    const result = await storeEvents(db, { workspaceId, sourceId: group.sourceId }, group.items.map((item) => item.event), group.endpoint);
    const stored = new Set(result.stored.map((event) => event.messageId));
    const refused = new Map(result.failed.map((item) => [item.messageId, item]));
    if (result.failed.length > 0) {
      // storeEvents quarantined the refused events anew; the original items stay open and carry
      // the error instead, so each problem is listed once.
      await db.query('delete from quarantine where workspace_id = $1 and id = any($2::uuid[])', [
        workspaceId,
        result.failed.map((item) => item.quarantineId),
      ]);
    }
    for (const { row, event } of group.items) {
      const failure = refused.get(event.messageId);
      outcomes.set(
        row.id,
        failure
          ? { id: row.id, ok: false, corrected: !!corrected, rejection: { error: failure.error, field: failure.field, message: failure.message } }
          : { id: row.id, ok: true, messageId: event.messageId, duplicate: !stored.has(event.messageId) },
      );
    }
  }

  const done = [...outcomes.values()];
  const replayed = done.flatMap((outcome) => (outcome.ok ? [{ id: outcome.id, message_id: outcome.messageId }] : []));
  if (replayed.length > 0) {
    await db.query(
      `update quarantine q set status = 'replayed', resolved_at = now(), replayed_message_id = x.message_id
         from jsonb_to_recordset($2::jsonb) as x(id uuid, message_id text)
        where q.workspace_id = $1 and q.id = x.id`,
      [workspaceId, JSON.stringify(replayed)],
    );
  }
  const failed = done.flatMap((outcome) =>
    outcome.ok
      ? []
      : [{ id: outcome.id, corrected: outcome.corrected, error: outcome.rejection.error, field: outcome.rejection.field, message: outcome.rejection.message }],
  );
  if (failed.length > 0) {
    // A failure of the item as stored is its new reason; a failed correction only adds to the
    // history, since the stored payload was not the one that failed.
    await db.query(
      `update quarantine q set
         reason = case when x.corrected then q.reason else x.error end,
         field = case when x.corrected then q.field else x.field end,
         errors = q.errors || jsonb_build_array(jsonb_build_object(
           'error', x.error, 'field', x.field, 'message', x.message, 'at', now(), 'corrected', x.corrected))
         from jsonb_to_recordset($2::jsonb) as x(id uuid, corrected boolean, error text, field text, message text)
        where q.workspace_id = $1 and q.id = x.id`,
      [workspaceId, JSON.stringify(failed)],
    );
  }
  return rows.map((row) => outcomes.get(row.id)!);
}

/**
 * Stores a quarantined item, as received or corrected. Throws ReplayRejectedError when it is
 * still invalid. Replaying an item again is harmless: its messageId is already stored.
 */
export async function replayQuarantineItem(db: Db, workspaceId: string, id: string, body: ReplayBody = {}): Promise<ReplayResult> {
  const row = await findRow(db, workspaceId, id);
  const corrected = 'payload' in body ? { payload: body.payload } : undefined;
  const [outcome] = await replayRows(db, workspaceId, [row], corrected);
  if (!outcome!.ok) throw new ReplayRejectedError(outcome!.rejection);
  const updated = await findRow(db, workspaceId, id);
  return { item: toItem(updated), messageId: outcome!.messageId, duplicate: outcome!.duplicate };
}

/** Replays open items (optionally of one reason or source), oldest first, as received. */
export async function replayOpenItems(db: Db, workspaceId: string, body: BulkReplayBody): Promise<BulkReplayResult> {
  const { rows } = await db.query<QuarantineRow>(
    `select ${COLUMNS} from quarantine
      where workspace_id = $1 and status = 'open'
        and ($2::text is null or reason = $2)
        and ($3::uuid is null or source_id = $3)
      order by received_at, id
      limit $4`,
    [workspaceId, body.reason ?? null, body.sourceId ?? null, body.limit ?? 500],
  );
  const outcomes = await replayRows(db, workspaceId, await openQuarantineRows(db, workspaceId, rows));
  const replayed = outcomes.filter((outcome) => outcome.ok);
  return {
    attempted: rows.length,
    replayed: replayed.length,
    duplicates: replayed.filter((outcome) => outcome.duplicate).length,
    failed: outcomes.flatMap((outcome) =>
      outcome.ok ? [] : [{ id: outcome.id, error: outcome.rejection.error, field: outcome.rejection.field, message: outcome.rejection.message }],
    ),
  };
}

/** Marks an item as not worth replaying. It is kept (and can still be replayed later). */
export async function discardQuarantineItem(db: Queryable, workspaceId: string, id: string): Promise<QuarantineItem> {
  const { rows } = await db.query<QuarantineRow>(
    `update quarantine set status = 'discarded', resolved_at = now()
      where workspace_id = $1 and id = $2 and status = 'open'
      returning ${COLUMNS}`,
    [workspaceId, id],
  );
  if (rows[0]) return toItem(rows[0]);
  const existing = await findRow(db, workspaceId, id);
  if (existing.status === 'discarded') return toItem(existing);
  throw new ConflictError(`Item "${id}" was already replayed; there is nothing to discard`);
}
