import crypto from 'node:crypto';
import type pg from 'pg';
import { ApiError } from '../api/errors.ts';
import { decodeCursor, encodeCursor } from '../api/pagination.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { withTransaction, type Db, type Queryable } from '../storage/database.ts';
import { NotFoundError } from '../workspaces/store.ts';
import type {
  CreateDestinationBody,
  DeadLetter,
  DeadLetterListQuery,
  Destination,
  DestinationSegment,
  DestinationSettingsInput,
  UpdateDestinationBody,
} from './schemas.ts';

export interface DestinationSettings {
  batchSize: number;
  maxAttempts: number;
  timeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** null: every live identifier type of the profile. */
  identifiers: string[] | null;
}

export const DEFAULT_SETTINGS: DestinationSettings = {
  batchSize: 500,
  maxAttempts: 8,
  timeoutMs: 10_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 600_000,
  identifiers: null,
};

/** Stored settings (validated when saved) over the defaults. */
export function effectiveSettings(stored: DestinationSettingsInput): DestinationSettings {
  return { ...DEFAULT_SETTINGS, ...stored, identifiers: stored.identifiers ?? null };
}

/** A destination URL fetch can call: absolute http(s), no credentials (fetch refuses them), no fragment. */
export function checkUrl(raw: string, field = 'url'): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ApiError(400, 'invalid_request', `${field} is not an absolute URL`, field);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ApiError(400, 'invalid_request', `${field} must use http or https, not ${url.protocol.replace(':', '')}`, field);
  }
  if (url.username || url.password) {
    throw new ApiError(400, 'invalid_request', `${field} must not contain credentials; the HMAC signature authenticates each request`, field);
  }
  if (url.hash) throw new ApiError(400, 'invalid_request', `${field} must not contain a #fragment`, field);
  return raw;
}

export function generateSecret(): string {
  return `whsec_${crypto.randomBytes(32).toString('base64url')}`;
}

async function checkSettings(db: Queryable, workspaceId: string, settings: DestinationSettingsInput): Promise<void> {
  const merged = effectiveSettings(settings);
  if (merged.backoffMaxMs < merged.backoffBaseMs) {
    throw new ApiError(400, 'invalid_request', `settings.backoffMaxMs (${merged.backoffMaxMs}) is below settings.backoffBaseMs (${merged.backoffBaseMs})`, 'settings.backoffMaxMs');
  }
  if (merged.identifiers) {
    const { config } = await loadWorkspaceIdentity(db, workspaceId);
    merged.identifiers.forEach((type, i) => {
      if (!config.types.has(type)) {
        throw new ApiError(
          400,
          'invalid_request',
          `Unknown identifier type "${type}"; this workspace has ${[...config.types.keys()].join(', ')}`,
          `settings.identifiers.${i}`,
        );
      }
    });
  }
}

interface DestinationRow {
  id: string;
  name: string;
  kind: 'webhook';
  url: string;
  secret: string;
  status: 'active' | 'paused';
  settings: DestinationSettingsInput;
  created_at: Date;
  updated_at: Date;
}

interface LinkRow {
  destination_id: string;
  segment_id: string;
  segment_key: string;
  segment_name: string;
  status: 'active' | 'paused';
  cursor: number;
  backfill_pending: boolean;
  pending_batch_id: string | null;
  pending_changes: number | null;
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  last_delivered_at: Date | null;
  delivered_batches: number;
  delivered_changes: number;
  dead_batches: number;
  created_at: Date;
}

const LINK_COLUMNS = `ds.destination_id, ds.segment_id, s.key as segment_key, s.name as segment_name, ds.status, ds.cursor,
  ds.backfill_pending, ds.pending_batch_id, json_array_length(ds.pending_payload -> 'changes') as pending_changes, ds.attempts,
  ds.next_attempt_at, ds.last_error, ds.last_delivered_at, ds.delivered_batches, ds.delivered_changes, ds.dead_batches, ds.created_at`;

const toLink = (row: LinkRow): DestinationSegment => ({
  segment: { id: row.segment_id, key: row.segment_key, name: row.segment_name },
  status: row.status,
  cursor: row.cursor,
  backfillPending: row.backfill_pending,
  pendingBatch: row.pending_batch_id
    ? {
        batchId: row.pending_batch_id,
        changes: row.pending_changes ?? 0,
        attempts: row.attempts,
        nextAttemptAt: row.next_attempt_at?.toISOString() ?? null,
        lastError: row.attempts > 0 ? row.last_error : null,
      }
    : null,
  lastDeliveredAt: row.last_delivered_at?.toISOString() ?? null,
  lastError: row.last_error,
  deliveredBatches: row.delivered_batches,
  deliveredChanges: row.delivered_changes,
  deadBatches: row.dead_batches,
  createdAt: row.created_at.toISOString(),
});

const toDestination = (row: DestinationRow, links: readonly LinkRow[]): Destination => ({
  id: row.id,
  name: row.name,
  kind: row.kind,
  url: row.url,
  status: row.status,
  settings: effectiveSettings(row.settings),
  secretHint: row.secret.slice(-4),
  segments: links.filter((link) => link.destination_id === row.id).map(toLink),
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

async function linksOf(db: Queryable, workspaceId: string, destinationIds: readonly string[]): Promise<LinkRow[]> {
  const { rows } = await db.query<LinkRow>(
    `select ${LINK_COLUMNS} from destination_segments ds join segments s on s.workspace_id = ds.workspace_id and s.id = ds.segment_id
      where ds.workspace_id = $1 and ds.destination_id = any($2::uuid[]) order by ds.created_at, s.key`,
    [workspaceId, destinationIds],
  );
  return rows;
}

function isUniqueViolation(error: unknown): boolean {
  return (error as pg.DatabaseError | undefined)?.code === '23505';
}

async function loadRow(db: Queryable, workspaceId: string, id: string): Promise<DestinationRow> {
  const { rows } = await db.query<DestinationRow>('select * from destinations where workspace_id = $1 and id = $2', [workspaceId, id]);
  if (!rows[0]) throw new NotFoundError(`Destination ${id} not found`);
  return rows[0];
}

export async function getDestination(db: Queryable, workspaceId: string, id: string): Promise<Destination> {
  const row = await loadRow(db, workspaceId, id);
  return toDestination(row, await linksOf(db, workspaceId, [id]));
}

export async function listDestinations(db: Queryable, workspaceId: string): Promise<Destination[]> {
  const { rows } = await db.query<DestinationRow>('select * from destinations where workspace_id = $1 order by created_at, id', [workspaceId]);
  const links = await linksOf(db, workspaceId, rows.map((row) => row.id));
  return rows.map((row) => toDestination(row, links));
}

/** Creates a webhook destination; the answer carries the secret, which is never shown again. */
export async function createDestination(db: Db, workspaceId: string, body: CreateDestinationBody): Promise<Destination & { secret: string }> {
  checkUrl(body.url);
  const settings = body.settings ?? {};
  await checkSettings(db, workspaceId, settings);
  const secret = body.secret ?? generateSecret();
  try {
    const { rows } = await db.query<DestinationRow>(
      `insert into destinations (workspace_id, name, kind, url, secret, status, settings)
       values ($1, $2, 'webhook', $3, $4, $5, $6) returning *`,
      [workspaceId, body.name, body.url, secret, body.status ?? 'active', settings],
    );
    return { ...toDestination(rows[0]!, []), secret };
  } catch (error) {
    if (isUniqueViolation(error)) throw new ApiError(409, 'conflict', `A destination named "${body.name}" already exists`, 'name');
    throw error;
  }
}

/** Changes what the body names; settings fields replace the stored ones one by one (null is not accepted, omit instead). */
export async function updateDestination(
  db: Db,
  workspaceId: string,
  id: string,
  body: UpdateDestinationBody,
): Promise<Destination & { secret?: string }> {
  if (body.url !== undefined) checkUrl(body.url);
  if (body.secret !== undefined && body.rotateSecret) {
    throw new ApiError(400, 'invalid_request', 'Give either secret or rotateSecret, not both', 'rotateSecret');
  }
  const current = await loadRow(db, workspaceId, id);
  const settings = body.settings ? { ...current.settings, ...body.settings } : current.settings;
  await checkSettings(db, workspaceId, settings);
  const secret = body.rotateSecret ? generateSecret() : body.secret;
  try {
    const { rows } = await db.query<DestinationRow>(
      `update destinations set name = coalesce($3, name), url = coalesce($4, url), status = coalesce($5, status),
              settings = $6, secret = coalesce($7, secret), updated_at = now()
        where workspace_id = $1 and id = $2 returning *`,
      [workspaceId, id, body.name ?? null, body.url ?? null, body.status ?? null, settings, secret ?? null],
    );
    if (!rows[0]) throw new NotFoundError(`Destination ${id} not found`);
    const destination = toDestination(rows[0], await linksOf(db, workspaceId, [id]));
    return secret ? { ...destination, secret } : destination;
  } catch (error) {
    if (isUniqueViolation(error)) throw new ApiError(409, 'conflict', `A destination named "${body.name}" already exists`, 'name');
    throw error;
  }
}

/** Deletes the destination with its segment connections and dead letters. */
export async function deleteDestination(db: Db, workspaceId: string, id: string): Promise<void> {
  const { rowCount } = await db.query('delete from destinations where workspace_id = $1 and id = $2', [workspaceId, id]);
  if (!rowCount) throw new NotFoundError(`Destination ${id} not found`);
}

export interface SegmentRow {
  id: string;
  key: string;
  name: string;
}

export async function findSegmentByKey(db: Queryable, workspaceId: string, key: string, field?: string): Promise<SegmentRow> {
  const { rows } = await db.query<SegmentRow>('select id, key, name from segments where workspace_id = $1 and key = $2', [workspaceId, key]);
  if (!rows[0]) throw new ApiError(404, 'not_found', `Segment "${key}" not found`, field);
  return rows[0];
}

/**
 * The id of the latest segment transition yet numbered (committed or not). A connection starts
 * after it: changes from then on are sent; with sendExisting the members are read only once
 * every transaction that might still commit a transition up to it has ended (sync.ts).
 */
export async function latestTransitionId(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ last: number }>(
    `select coalesce(pg_sequence_last_value(pg_get_serial_sequence('segment_transitions', 'id')::regclass), 0)::bigint as last`,
  );
  return rows[0]!.last;
}

/** Connects a segment: its changes from now on (and, with sendExisting, its current members first) go to the destination. */
export async function connectSegment(
  db: Db,
  workspaceId: string,
  destinationId: string,
  body: { segment: string; sendExisting?: boolean },
  scheduleSweep: (client: Queryable) => Promise<void>,
): Promise<DestinationSegment> {
  await loadRow(db, workspaceId, destinationId);
  const segment = await findSegmentByKey(db, workspaceId, body.segment, 'segment');
  const cursor = await latestTransitionId(db);
  await withTransaction(db, async (client) => {
    try {
      await client.query(
        `insert into destination_segments (workspace_id, destination_id, segment_id, cursor, backfill_pending) values ($1, $2, $3, $4, $5)`,
        [workspaceId, destinationId, segment.id, cursor, body.sendExisting ?? false],
      );
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw new ApiError(409, 'conflict', `Segment "${segment.key}" is already connected to this destination`, 'segment');
      }
      throw error;
    }
    await scheduleSweep(client);
  });
  const links = await linksOf(db, workspaceId, [destinationId]);
  return toLink(links.find((link) => link.segment_id === segment.id)!);
}

/** Disconnects a segment; a batch being retried for it is dropped (nothing more is sent for it). */
export async function disconnectSegment(db: Db, workspaceId: string, destinationId: string, segmentKey: string): Promise<void> {
  await loadRow(db, workspaceId, destinationId);
  const segment = await findSegmentByKey(db, workspaceId, segmentKey, 'segment');
  const { rowCount } = await db.query(
    'delete from destination_segments where workspace_id = $1 and destination_id = $2 and segment_id = $3',
    [workspaceId, destinationId, segment.id],
  );
  if (!rowCount) throw new ApiError(404, 'not_found', `Segment "${segmentKey}" is not connected to this destination`, 'segment');
}

interface DeadLetterRow {
  id: string;
  destination_id: string;
  segment_id: string;
  batch_id: string;
  change_count: number;
  attempts: number;
  last_error: string;
  first_attempt_at: Date;
  last_attempt_at: Date;
  status: DeadLetter['status'];
  created_at: Date;
  resolved_at: Date | null;
  cursor_at: string;
  payload?: string;
}

const DEAD_LETTER_COLUMNS = `id, destination_id, segment_id, batch_id, change_count, attempts, last_error, first_attempt_at,
  last_attempt_at, status, created_at, resolved_at, to_json(created_at) #>> '{}' as cursor_at`;

const toDeadLetter = (row: DeadLetterRow): DeadLetter => ({
  id: row.id,
  destinationId: row.destination_id,
  segmentId: row.segment_id,
  batchId: row.batch_id,
  changes: row.change_count,
  attempts: row.attempts,
  lastError: row.last_error,
  firstAttemptAt: row.first_attempt_at.toISOString(),
  lastAttemptAt: row.last_attempt_at.toISOString(),
  status: row.status,
  createdAt: row.created_at.toISOString(),
  resolvedAt: row.resolved_at?.toISOString() ?? null,
});

/** Dead letters of a destination, newest first. */
export async function listDeadLetters(
  db: Queryable,
  workspaceId: string,
  destinationId: string,
  query: DeadLetterListQuery,
): Promise<{ items: DeadLetter[]; nextCursor: string | null }> {
  await loadRow(db, workspaceId, destinationId);
  const limit = query.limit ?? 50;
  const after = query.cursor ? decodeCursor(query.cursor, ['instant', 'uuid']) : null;
  const { rows } = await db.query<DeadLetterRow>(
    `select ${DEAD_LETTER_COLUMNS} from destination_dead_letters
      where workspace_id = $1 and destination_id = $2 and ($3::text is null or status = $3)
        and ($4::timestamptz is null or (created_at, id) < ($4::timestamptz, $5::uuid))
      order by created_at desc, id desc limit $6`,
    [workspaceId, destinationId, query.status ?? null, after?.[0] ?? null, after?.[1] ?? null, limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { items: page.map(toDeadLetter), nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at, last.id]) : null };
}

export interface DeadLetterDetail extends DeadLetter {
  payload: unknown;
  /** The body exactly as sent, for redelivery. */
  body: string;
}

export async function getDeadLetter(db: Queryable, workspaceId: string, destinationId: string, id: string): Promise<DeadLetterDetail> {
  const { rows } = await db.query<DeadLetterRow & { payload: string }>(
    `select ${DEAD_LETTER_COLUMNS}, payload::text as payload from destination_dead_letters
      where workspace_id = $1 and destination_id = $2 and id = $3`,
    [workspaceId, destinationId, id],
  );
  const row = rows[0];
  if (!row) throw new NotFoundError(`Dead letter ${id} not found for destination ${destinationId}`);
  return { ...toDeadLetter(row), payload: JSON.parse(row.payload) as unknown, body: row.payload };
}

function requireDead(letter: DeadLetter): void {
  if (letter.status !== 'dead') {
    throw new ApiError(409, 'conflict', `Dead letter ${letter.id} is already ${letter.status}`);
  }
}

export async function discardDeadLetter(db: Queryable, workspaceId: string, destinationId: string, id: string): Promise<DeadLetter> {
  requireDead(await getDeadLetter(db, workspaceId, destinationId, id));
  const { rows } = await db.query<DeadLetterRow>(
    `update destination_dead_letters set status = 'discarded', resolved_at = now()
      where workspace_id = $1 and destination_id = $2 and id = $3 and status = 'dead' returning ${DEAD_LETTER_COLUMNS}`,
    [workspaceId, destinationId, id],
  );
  if (!rows[0]) throw new ApiError(409, 'conflict', `Dead letter ${id} changed meanwhile; read it again`);
  return toDeadLetter(rows[0]);
}

/** Loads a dead letter that may be redelivered (status dead), with its destination's URL, secret and timeout. */
export async function deadLetterForRedelivery(db: Queryable, workspaceId: string, destinationId: string, id: string) {
  const destination = await loadRow(db, workspaceId, destinationId);
  const letter = await getDeadLetter(db, workspaceId, destinationId, id);
  requireDead(letter);
  return { letter, url: destination.url, secret: destination.secret, settings: effectiveSettings(destination.settings) };
}

/** Records the outcome of a redelivery attempt: redelivered on success, otherwise one more attempt and its error. */
export async function recordRedelivery(
  db: Queryable,
  workspaceId: string,
  destinationId: string,
  id: string,
  outcome: { delivered: true } | { delivered: false; error: string },
  at: Date,
): Promise<DeadLetter> {
  const { rows } = await db.query<DeadLetterRow>(
    `update destination_dead_letters
        set attempts = attempts + 1, last_attempt_at = $4,
            status = case when $5 then 'redelivered' else status end,
            resolved_at = case when $5 then $4 else resolved_at end,
            last_error = coalesce($6, last_error)
      where workspace_id = $1 and destination_id = $2 and id = $3 and status = 'dead' returning ${DEAD_LETTER_COLUMNS}`,
    [workspaceId, destinationId, id, at, outcome.delivered, outcome.delivered ? null : outcome.error],
  );
  if (!rows[0]) throw new ApiError(409, 'conflict', `Dead letter ${id} changed meanwhile; read it again`);
  return toDeadLetter(rows[0]);
}
