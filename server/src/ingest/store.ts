import crypto from 'node:crypto';
import { observeEvents } from '../catalogue/observe.ts';
import { queueCatalogueObservations } from '../catalogue/store.ts';
import { assignTransactionId, type Db } from '../storage/database.ts';
import { ensureMonthlyPartitions } from '../storage/partitions.ts';
import { sealQuarantinePayload } from '../privacy/sealed-payloads.ts';
import { piiCodec, type PiiCodec } from '../privacy/pii-codec.ts';
import { eventPiiHashes } from '../privacy/pii-hashes.ts';
import type { NormalizedEvent, Rejection } from './normalize.ts';

export interface SourceRef {
  workspaceId: string;
  sourceId: string;
}

export interface StoreResult {
  /** Events stored by this call (first copy of their messageId in the workspace). */
  stored: NormalizedEvent[];
  /** Events skipped because their messageId was already stored (retries, re-imports). */
  duplicates: number;
  /** Events PostgreSQL refused to store (e.g. a value it cannot represent), now in quarantine. */
  failed: QuarantinedItem[];
}

export interface QuarantinedItem extends Rejection {
  quarantineId: string;
}

// Column list of jsonb_to_recordset: the whole batch travels as one JSON parameter, so a batch
// of any size is one statement and PostgreSQL parses it in a single pass.
const RECORD_COLUMNS = `message_id text, timestamp timestamptz, type text, event text, name text, category text,
  user_id text, anonymous_id text, previous_id text, group_id text, properties jsonb, traits jsonb, context jsonb,
  integrations jsonb, extra jsonb, original_timestamp timestamptz, sent_at timestamptz, received_at timestamptz, pii_hashes jsonb`;

// The statement's parts shared by both paths: number the batch's events, claim their messageIds
// (exactly once per workspace), queue them for identity resolution, and store the new ones.
const INCOMING = `incoming as (
    -- seq is drawn in the order the client sent the events, so one person's events of a batch
    -- keep their order downstream (identity resolution goes by seq); duplicates leave gaps.
    select x.*, nextval('events_seq') as seq from jsonb_to_recordset($3::jsonb) as x(${RECORD_COLUMNS})`;
const CLAIM_AND_QUEUE = `fresh as (
    -- Sorted so concurrent batches sharing messageIds lock them in the same order (no deadlock).
    -- Only the key: nothing reads more of a claim (migration 0098).
    insert into event_message_ids (workspace_id, message_id)
    select $1, message_id from incoming order by message_id
    on conflict do nothing
    returning message_id
  ), queued as (
    -- Identity resolution picks events up from here, in seq order: one row for the request's
    -- stored events, not one per event (migration 0093, identity/queue-take.ts).
    insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
    select $1, min(i.seq), count(*), array_agg(i.seq order by i.seq), array_agg(i.timestamp order by i.seq)
      from incoming i join fresh f using (message_id)
    having count(*) > 0
  )`;
const STORE = `
  insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, name, category, user_id,
    anonymous_id, previous_id, group_id, properties, traits, context, integrations, extra, original_timestamp,
    sent_at, received_at, pii_hashes, profile_id)
  select $1, i.timestamp, i.seq, i.message_id, $2, i.type, i.event, i.name, i.category, i.user_id, i.anonymous_id,
    i.previous_id, i.group_id, i.properties, i.traits, i.context, i.integrations, i.extra, i.original_timestamp,
    i.sent_at, i.received_at, i.pii_hashes,
    -- The profile that already owns the event's user id (else its anonymous id), written with the
    -- row: identity resolution then rewrites the event only when it resolves elsewhere (a new
    -- person, a merge, a refused identifier) instead of every event a second time. A miss (a new
    -- person, an id that is stored normalised differently) leaves it to resolution, as before.
    coalesce(
      (select pi.profile_id from profile_identifiers pi
        where pi.workspace_id = $1 and pi.type = 'user_id' and pi.value = i.user_id and pi.unbound_at is null),
      (select pi.profile_id from profile_identifiers pi
        where pi.workspace_id = $1 and pi.type = 'anonymous_id' and pi.value = i.anonymous_id and pi.unbound_at is null))
  from incoming i join fresh f using (message_id)
  returning message_id`;

/**
 * The transactional path, after `begin` and the transaction's id (assignTransactionId): the
 * catalogue's observations follow in a second statement, of exactly the events stored.
 */
const INSERT_EVENTS = `with ${INCOMING}), ${CLAIM_AND_QUEUE}${STORE}`;

/**
 * The usual path: one autocommit statement per batch (one round trip; committed, WAL flushed,
 * when its answer arrives). It takes the transaction's id before drawing any seq (the one-time
 * filter on `writer` runs before the first row of `incoming`; storage/settle.ts says why), and
 * queues the catalogue's observations of every event sent ($4), which is right only if all of
 * them are new: ingest_expect_all_fresh (migration 0072) stops the statement otherwise (TP001),
 * and the batch goes through the transactional path instead.
 */
export const INSERT_EVENTS_AND_OBSERVATIONS = `
  with writer as materialized (select pg_current_xact_id() as xid),
  ${INCOMING}
    where (select xid from writer) is not null
  ), ${CLAIM_AND_QUEUE}, observed as (
    insert into catalogue_queue (workspace_id, observations)
    select $1, $4::jsonb where ingest_expect_all_fresh((select count(*) from fresh), $5)
  ), stored as (${STORE})
  -- One row, the count, rather than a row per stored event: all of them are new here (or the
  -- statement failed), so the ids would only be counted.
  select count(*)::int as stored from stored`;

/** Named: each pooled connection parses and plans it once. */
const SINGLE_STATEMENT = 'touchpoint_ingest_store_batch';

function toRecord(event: NormalizedEvent) {
  return {
    message_id: event.messageId,
    timestamp: event.timestamp.toISOString(),
    type: event.type,
    event: event.event,
    name: event.name,
    category: event.category,
    user_id: event.userId,
    anonymous_id: event.anonymousId,
    previous_id: event.previousId,
    group_id: event.groupId,
    properties: event.properties,
    traits: event.traits,
    context: event.context,
    integrations: event.integrations,
    extra: event.extra,
    original_timestamp: event.originalTimestamp?.toISOString() ?? null,
    sent_at: event.sentAt?.toISOString() ?? null,
    received_at: event.receivedAt.toISOString(),
  };
}

/**
 * toRecord as sent to PostgreSQL: fields without a value are left out rather than sent as null
 * (jsonb_to_recordset reads a missing key and a JSON null alike, as SQL NULL), so a batch's JSON
 * is a tenth shorter to write, send and parse. They are left out by being `undefined`, which
 * JSON.stringify skips: every record then has the same shape (one hidden class), which a record
 * built key by key did not, and building and stringifying it costs less.
 */
function toStoredRecord(event: NormalizedEvent, receivedAt: string): StoredRecord {
  return {
    message_id: event.messageId,
    timestamp: event.timestamp.toISOString(),
    type: event.type,
    received_at: receivedAt,
    event: event.event ?? undefined,
    name: event.name ?? undefined,
    category: event.category ?? undefined,
    user_id: event.userId ?? undefined,
    anonymous_id: event.anonymousId ?? undefined,
    previous_id: event.previousId ?? undefined,
    group_id: event.groupId ?? undefined,
    properties: event.properties ?? undefined,
    traits: event.traits ?? undefined,
    context: event.context ?? undefined,
    integrations: event.integrations ?? undefined,
    extra: event.extra ?? undefined,
    original_timestamp: event.originalTimestamp ? event.originalTimestamp.toISOString() : undefined,
    sent_at: event.sentAt ? event.sentAt.toISOString() : undefined,
  };
}

interface StoredRecord {
  message_id: string;
  timestamp: string;
  type: string;
  received_at: string;
  event: string | undefined;
  name: string | undefined;
  category: string | undefined;
  user_id: string | undefined;
  anonymous_id: string | undefined;
  previous_id: string | undefined;
  group_id: string | undefined;
  properties: Record<string, unknown> | undefined;
  traits: Record<string, unknown> | undefined;
  context: Record<string, unknown> | undefined;
  integrations: Record<string, unknown> | undefined;
  extra: Record<string, unknown> | undefined;
  original_timestamp: string | undefined;
  sent_at: string | undefined;
}

/** The batch's records as one JSON text (a batch's events mostly share their receivedAt: its text is made once). */
function recordsJson(codec: PiiCodec, events: readonly NormalizedEvent[]): string {
  let receivedMs = NaN;
  let receivedText = '';
  const records = events.map((event) => {
    if (event.receivedAt.getTime() !== receivedMs) {
      receivedMs = event.receivedAt.getTime();
      receivedText = event.receivedAt.toISOString();
    }
    return sealedRecord(codec, toStoredRecord(event, receivedText));
  });
  return JSON.stringify(records);
}

/** The record as stored: PII fields sealed, and their keyed hashes beside them for analytics (privacy/pii-hashes.ts). */
function sealedRecord(codec: PiiCodec, record: StoredRecord): object {
  const hashes = eventPiiHashes(record, (value) => codec.hash(value));
  const sealed = codec.sealEvent(record);
  return hashes ? { ...sealed, pii_hashes: hashes } : sealed;
}

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** SQLSTATE class 22: the data itself was refused (bad encoding, out-of-range value, …). */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return typeof code === 'string' && code.startsWith('22');
}

/** Some events of the batch were stored before (ingest_expect_all_fresh refused the single statement). */
function isAlreadyStored(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'TP001';
}


async function insertBatch(db: Db, source: SourceRef, events: NormalizedEvent[]): Promise<NormalizedEvent[]> {
  // PII fields of traits/properties/context are stored sealed (privacy/pii-codec.ts).
  const codec = await piiCodec(db, source.workspaceId);
  const records = recordsJson(codec, events);
  for (let attempt = 1; ; attempt++) {
    try {
      const { rows } = await db.query<{ stored: number }>({
        name: SINGLE_STATEMENT,
        text: INSERT_EVENTS_AND_OBSERVATIONS,
        values: [source.workspaceId, source.sourceId, records, JSON.stringify(observeEvents(events)), events.length],
      });
      const stored = rows[0]?.stored ?? 0;
      if (stored !== events.length) throw new Error(`ingest stored ${stored} of ${events.length} new events`);
      return events;
    } catch (error) {
      if (isAlreadyStored(error)) return insertBatchInTransaction(db, source, events, records);
      if (attempt < 5 && isRetryable(error)) continue;
      throw error;
    }
  }
}

/** A batch holding messageIds stored before (a client's retry, a re-run import): the stored ones are observed after the insert. */
async function insertBatchInTransaction(db: Db, source: SourceRef, events: NormalizedEvent[], records: string): Promise<NormalizedEvent[]> {
  for (let attempt = 1; ; attempt++) {
    const client = await db.connect();
    try {
      await client.query('begin');
      await assignTransactionId(client);
      const { rows } = await client.query<{ message_id: string }>(INSERT_EVENTS, [source.workspaceId, source.sourceId, records]);
      const storedIds = new Set(rows.map((row) => row.message_id));
      const stored = events.filter((event) => storedIds.has(event.messageId));
      // What this request stored, for the catalogue worker (catalogue_queue): a plain insert.
      await queueCatalogueObservations(client, source.workspaceId, stored);
      await client.query('commit');
      return stored;
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      if (attempt < 5 && isRetryable(error)) continue;
      throw error;
    } finally {
      client.release();
    }
  }
}

/**
 * Durably stores events, exactly once per (workspace, messageId): when this resolves, the events
 * are committed. Duplicates inside the batch and of earlier batches are counted, not stored.
 */
export async function storeEvents(db: Db, source: SourceRef, events: readonly NormalizedEvent[], endpoint = 'batch'): Promise<StoreResult> {
  const unique: NormalizedEvent[] = [];
  const seen = new Set<string>();
  for (const event of events) {
    if (seen.has(event.messageId)) continue;
    seen.add(event.messageId);
    unique.push(event);
  }
  const inBatchDuplicates = events.length - unique.length;
  if (unique.length === 0) return { stored: [], duplicates: inBatchDuplicates, failed: [] };
  await ensureMonthlyPartitions(db, 'events', unique.map((event) => event.timestamp));

  try {
    const stored = await insertBatch(db, source, unique);
    return { stored, duplicates: inBatchDuplicates + unique.length - stored.length, failed: [] };
  } catch (error) {
    if (!isDataError(error) || unique.length === 1) {
      if (isDataError(error)) {
        const failed = await quarantineFailures(db, source, unique, endpoint, error);
        return { stored: [], duplicates: inBatchDuplicates, failed };
      }
      throw error;
    }
  }
  // One event PostgreSQL refuses must not cost the others: store them one by one.
  const stored: NormalizedEvent[] = [];
  const failed: QuarantinedItem[] = [];
  let duplicates = inBatchDuplicates;
  for (const event of unique) {
    const result = await storeEvents(db, source, [event], endpoint);
    stored.push(...result.stored);
    failed.push(...result.failed);
    duplicates += result.duplicates;
  }
  return { stored, duplicates, failed };
}

async function quarantineFailures(
  db: Db,
  source: SourceRef,
  events: NormalizedEvent[],
  endpoint: string,
  error: unknown,
): Promise<QuarantinedItem[]> {
  const message = error instanceof Error ? error.message : String(error);
  return quarantine(
    db,
    source,
    endpoint,
    events.map((event) => ({
      error: 'storage_rejected',
      field: null,
      message: `PostgreSQL refused the event: ${message}`,
      messageId: event.messageId,
      payload: toRecord(event),
    })),
  );
}

/** Keeps rejected items with their payload and reason; returns them with their quarantine ids. */
export async function quarantine(
  db: Pick<Db, 'query'>,
  source: { workspaceId: string; sourceId: string | null },
  endpoint: string,
  rejections: readonly Rejection[],
): Promise<QuarantinedItem[]> {
  if (rejections.length === 0) return [];
  const items = rejections.map((rejection) => ({ ...rejection, quarantineId: crypto.randomUUID() }));
  // Payloads are sealed by the workspace data key; erasure finds them by keyed hashes (privacy/sealed-payloads.ts).
  const sealed = await Promise.all(items.map((item) => sealQuarantinePayload(db, source.workspaceId, item.payload)));
  await db.query(
    `insert into quarantine (workspace_id, id, source_id, endpoint, message_id, reason, field, errors, payload, subject_hashes)
     select $1, x.id, $2, $3, x.message_id, x.reason, x.field, x.errors, x.payload,
            array(select decode(h, 'hex') from jsonb_array_elements_text(x.hashes) as h)
       from jsonb_to_recordset($4::jsonb) as x(id uuid, message_id text, reason text, field text, errors jsonb, payload text, hashes jsonb)`,
    [
      source.workspaceId,
      source.sourceId,
      endpoint,
      JSON.stringify(
        items.map((item, i) => ({
          id: item.quarantineId,
          message_id: item.messageId,
          reason: item.error,
          field: item.field,
          errors: [{ error: item.error, field: item.field, message: item.message }],
          payload: sealed[i]!.sealed,
          hashes: sealed[i]!.hashes.map((hash) => hash.toString('hex')),
        })),
      ),
    ],
  );
  return items;
}
