import { Type, type Static } from '@sinclair/typebox';
import type { Db, Queryable } from '../storage/database.ts';
import { NotFoundError } from '../workspaces/store.ts';
import { personalDataSteps } from './registry.ts';
import { lookupHashKey } from './data-keys.ts';
import { keyedHash } from './secret.ts';
import { gatherSubject, parseSubject, type SubjectRef } from './subjects.ts';
import { lockWorkspaceIdentity } from '../identity/resolver.ts';
import { addSuppressions, suppressionFilter } from './suppression.ts';
import './steps.ts';

export const PrivacyRequestSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  kind: Type.Union([Type.Literal('access'), Type.Literal('erasure')]),
  status: Type.Union([Type.Literal('received'), Type.Literal('completed'), Type.Literal('failed')]),
  subjectType: Type.String({ description: "The subject's identifier type; its value is kept only as a keyed hash" }),
  requestedBy: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  receivedAt: Type.String({ format: 'date-time' }),
  dueAt: Type.String({ format: 'date-time' }),
  completedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  overdue: Type.Boolean(),
  result: Type.Union([Type.Record(Type.String(), Type.Integer()), Type.Null()], { description: 'Rows erased or exported per step' }),
  error: Type.Union([Type.String(), Type.Null()]),
});
export type PrivacyRequest = Static<typeof PrivacyRequestSchema>;

export const SubjectRequestSchema = Type.Object(
  {
    subject: Type.String({ minLength: 1, maxLength: 300, description: 'A profile id or <type>:<value>, e.g. email:li.lei@example.com or phone:+8613800138000' }),
    reason: Type.Optional(Type.String({ maxLength: 1000, description: 'Why, e.g. the ticket of the request' })),
  },
  { additionalProperties: false },
);

export const PrivacySettingsSchema = Type.Object(
  {
    eventRetentionDays: Type.Union([Type.Integer({ minimum: 1, maximum: 36_500 }), Type.Null()], { description: 'Raw events older than this are deleted; null keeps them' }),
    profileInactivityDays: Type.Union([Type.Integer({ minimum: 1, maximum: 36_500 }), Type.Null()], {
      description: 'Profiles not seen for this long are erased; null keeps them',
    }),
    requestDeadlineDays: Type.Integer({ minimum: 1, maximum: 90, description: 'Days a data-subject request may take' }),
  },
  { additionalProperties: false },
);
export type PrivacySettings = Static<typeof PrivacySettingsSchema>;

interface RequestRow {
  id: string;
  kind: PrivacyRequest['kind'];
  status: PrivacyRequest['status'];
  subject_type: string;
  requested_by: string;
  reason: string | null;
  received_at: Date;
  due_at: Date;
  completed_at: Date | null;
  result: Record<string, number> | null;
  error: string | null;
}
const toRequest = (row: RequestRow): PrivacyRequest => ({
  id: row.id,
  kind: row.kind,
  status: row.status,
  subjectType: row.subject_type,
  requestedBy: row.requested_by,
  reason: row.reason,
  receivedAt: row.received_at.toISOString(),
  dueAt: row.due_at.toISOString(),
  completedAt: row.completed_at?.toISOString() ?? null,
  overdue: row.status === 'received' && row.due_at < new Date(),
  result: row.result,
  error: row.error,
});

export async function getPrivacySettings(db: Queryable, workspaceId: string): Promise<PrivacySettings> {
  const { rows } = await db.query<{ event_retention_days: number | null; profile_inactivity_days: number | null; request_deadline_days: number }>(
    'select * from privacy_settings where workspace_id = $1',
    [workspaceId],
  );
  const row = rows[0];
  return {
    eventRetentionDays: row?.event_retention_days ?? null,
    profileInactivityDays: row?.profile_inactivity_days ?? null,
    requestDeadlineDays: row?.request_deadline_days ?? 30,
  };
}

export async function putPrivacySettings(db: Queryable, workspaceId: string, settings: PrivacySettings): Promise<PrivacySettings> {
  await db.query(
    `insert into privacy_settings (workspace_id, event_retention_days, profile_inactivity_days, request_deadline_days) values ($1, $2, $3, $4)
     on conflict (workspace_id) do update set event_retention_days = excluded.event_retention_days,
       profile_inactivity_days = excluded.profile_inactivity_days, request_deadline_days = excluded.request_deadline_days, updated_at = now()`,
    [workspaceId, settings.eventRetentionDays, settings.profileInactivityDays, settings.requestDeadlineDays],
  );
  return getPrivacySettings(db, workspaceId);
}

async function recordRequest(
  db: Queryable,
  workspaceId: string,
  kind: PrivacyRequest['kind'],
  subject: { type: string; value: string },
  requestedBy: string,
  reason: string | undefined,
): Promise<string> {
  const key = await lookupHashKey(db);
  const { requestDeadlineDays } = await getPrivacySettings(db, workspaceId);
  const { rows } = await db.query<{ id: string }>(
    `insert into privacy_requests (workspace_id, kind, subject_type, subject_hash, requested_by, reason, due_at)
     values ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7)) returning id`,
    [workspaceId, kind, subject.type, keyedHash(key, workspaceId, 'subject', `${subject.type}:${subject.value}`), requestedBy, reason ?? null, requestDeadlineDays],
  );
  return rows[0]!.id;
}

async function finish(db: Queryable, workspaceId: string, id: string, outcome: { result: Record<string, number> } | { error: string }): Promise<PrivacyRequest> {
  const { rows } = await db.query<RequestRow>(
    `update privacy_requests set status = $3, completed_at = now(), result = $4, error = $5 where workspace_id = $1 and id = $2 returning *`,
    [workspaceId, id, 'result' in outcome ? 'completed' : 'failed', 'result' in outcome ? outcome.result : null, 'error' in outcome ? outcome.error : null],
  );
  return toRequest(rows[0]!);
}

/**
 * Runs every step's erase for one subject in one transaction; returns rows affected per step and
 * the subject as gathered. The transaction holds the workspace's identity lock (the one every
 * resolution batch takes) and gathers the subject under it: no batch links a new identifier to
 * the person between gathering and erasing, and none runs until the suppressions are committed;
 * batches after it drop the person's queued events (identity/resolver.ts checks suppressions).
 */
export async function eraseSubjectData(db: Db, workspaceId: string, ref: SubjectRef, requestId: string): Promise<Record<string, number>> {
  const client = await db.connect();
  try {
    await client.query('begin');
    await lockWorkspaceIdentity(client, workspaceId);
    const subject = await gatherSubject(client, workspaceId, ref);
    const result: Record<string, number> = {};
    for (const step of personalDataSteps()) result[step.name] = await step.erase(client, subject);
    result.suppressed_identifiers = await addSuppressions(client, subject.workspaceId, requestId, subject.identifiers);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Erasure: the person's profile, identifiers, events and everything registered modules hold are
 * deleted or anonymised, and their identifiers join the suppression list so an SDK re-sending
 * them does not bring the person back. The request is recorded (subject hashed) with its outcome.
 */
export async function requestErasure(db: Db, workspaceId: string, ref: string, requestedBy: string, reason?: string): Promise<PrivacyRequest> {
  const subjectRef = await parseSubject(db, workspaceId, ref);
  const id = await recordRequest(db, workspaceId, 'erasure', subjectRef, requestedBy, reason);
  try {
    const result = await eraseSubjectData(db, workspaceId, subjectRef, id);
    suppressionFilter(db).invalidate(workspaceId);
    return await finish(db, workspaceId, id, { result });
  } catch (error) {
    return finish(db, workspaceId, id, { error: error instanceof Error ? error.message : String(error) });
  }
}

/** Access/portability: everything held about the person, as JSON, by step. */
export async function requestAccessExport(
  db: Db,
  workspaceId: string,
  ref: string,
  requestedBy: string,
  reason?: string,
): Promise<{ request: PrivacyRequest; subject: { profileIds: string[]; identifiers: Array<{ type: string; value: string }> }; data: Record<string, unknown> }> {
  const subjectRef = await parseSubject(db, workspaceId, ref);
  const id = await recordRequest(db, workspaceId, 'access', subjectRef, requestedBy, reason);
  const subject = await gatherSubject(db, workspaceId, subjectRef);
  const data: Record<string, unknown> = {};
  const counts: Record<string, number> = {};
  for (const step of personalDataSteps()) {
    if (!step.export) continue;
    const value = await step.export(db, subject);
    data[step.name] = value;
    counts[step.name] = Array.isArray(value) ? value.length : Object.values(value as object).reduce<number>((sum, part) => sum + (Array.isArray(part) ? part.length : 1), 0);
  }
  const request = await finish(db, workspaceId, id, { result: counts });
  return { request, subject: { profileIds: subject.profileIds, identifiers: subject.identifiers }, data };
}

export async function listPrivacyRequests(db: Queryable, workspaceId: string, filter: { status?: string; kind?: string }): Promise<PrivacyRequest[]> {
  const { rows } = await db.query<RequestRow>(
    `select * from privacy_requests where workspace_id = $1 and ($2::text is null or status = $2) and ($3::text is null or kind = $3)
      order by received_at desc limit 1000`,
    [workspaceId, filter.status ?? null, filter.kind ?? null],
  );
  return rows.map(toRequest);
}

export async function getPrivacyRequest(db: Queryable, workspaceId: string, id: string): Promise<PrivacyRequest> {
  const { rows } = await db.query<RequestRow>('select * from privacy_requests where workspace_id = $1 and id = $2', [workspaceId, id]);
  if (!rows[0]) throw new NotFoundError(`Privacy request "${id}" not found`);
  return toRequest(rows[0]);
}

export async function suppressionSummary(db: Queryable, workspaceId: string): Promise<Array<{ identifierType: string; count: number; droppedEvents: number }>> {
  const { rows } = await db.query<{ identifier_type: string; count: string; dropped: string }>(
    `select identifier_type, count(*) as count, sum(dropped_events) as dropped from privacy_suppressions where workspace_id = $1
      group by identifier_type order by identifier_type`,
    [workspaceId],
  );
  return rows.map((row) => ({ identifierType: row.identifier_type, count: Number(row.count), droppedEvents: Number(row.dropped) }));
}
