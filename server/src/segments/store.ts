import { ApiError } from '../api/errors.ts';
import { decodeCursor, encodeCursor } from '../api/pagination.ts';
import type { DbClient, Queryable } from '../storage/database.ts';
import type { Condition } from './ast.ts';
import type { SegmentGraph } from './dependencies.ts';
import { printSegment } from './language/print.ts';
import { segmentReferences } from './references.ts';
import type { SegmentKind, SegmentListQuery, SegmentView } from './schemas.ts';
import type { SegmentRef } from './transitions.ts';

export type SegmentStatus = 'active' | 'paused' | 'archived';
export type SegmentState = 'computing' | 'ready' | 'failed';

/** A segments row as stored, plus the workspace time zone its schedule is read in. */
export interface SegmentRecord {
  workspaceId: string;
  id: string;
  key: string;
  name: string;
  description: string | null;
  kind: SegmentKind;
  definition: Condition | null;
  schedule: string | null;
  isTag: boolean;
  clientVisible: boolean;
  template: string | null;
  status: SegmentStatus;
  version: number;
  state: SegmentState;
  lastError: string | null;
  computedAt: Date | null;
  nextRunAt: Date | null;
  memberCount: number;
  createdAt: Date;
  updatedAt: Date;
  timeZone: string;
}

interface SegmentRow {
  workspace_id: string;
  id: string;
  key: string;
  name: string;
  description: string | null;
  kind: SegmentKind;
  definition: Condition | null;
  schedule: string | null;
  is_tag: boolean;
  client_visible: boolean;
  template: string | null;
  status: SegmentStatus;
  version: number;
  state: SegmentState;
  last_error: string | null;
  computed_at: Date | null;
  next_run_at: Date | null;
  member_count: number;
  created_at: Date;
  updated_at: Date;
  time_zone: string;
  cursor_at?: string;
}

const SELECT_SEGMENT = `
  select s.*, w.time_zone, to_json(s.created_at) #>> '{}' as cursor_at
    from segments s join workspaces w on w.id = s.workspace_id`;

const toRecord = (row: SegmentRow): SegmentRecord => ({
  workspaceId: row.workspace_id,
  id: row.id,
  key: row.key,
  name: row.name,
  description: row.description,
  kind: row.kind,
  definition: row.definition,
  schedule: row.schedule,
  isTag: row.is_tag,
  clientVisible: row.client_visible,
  template: row.template,
  status: row.status,
  version: row.version,
  state: row.state,
  lastError: row.last_error,
  computedAt: row.computed_at,
  nextRunAt: row.next_run_at,
  memberCount: row.member_count,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  timeZone: row.time_zone,
});

export function segmentRef(segment: Pick<SegmentRecord, 'id' | 'key' | 'name' | 'version'>): SegmentRef {
  return { id: segment.id, key: segment.key, name: segment.name, version: segment.version };
}

export function toSegmentView(segment: SegmentRecord): SegmentView {
  return {
    id: segment.id,
    key: segment.key,
    name: segment.name,
    description: segment.description,
    kind: segment.kind,
    status: segment.status,
    isTag: segment.isTag,
    clientVisible: segment.clientVisible,
    template: segment.template,
    definition: segment.definition,
    text: segment.definition ? printSegment(segment.definition) : null,
    schedule: segment.schedule,
    timeZone: segment.timeZone,
    nextRunAt: segment.nextRunAt?.toISOString() ?? null,
    state: segment.state,
    lastError: segment.lastError,
    computedAt: segment.computedAt?.toISOString() ?? null,
    memberCount: segment.memberCount,
    version: segment.version,
    createdAt: segment.createdAt.toISOString(),
    updatedAt: segment.updatedAt.toISOString(),
  };
}

export async function findSegmentByKey(db: Queryable, workspaceId: string, key: string): Promise<SegmentRecord | null> {
  const { rows } = await db.query<SegmentRow>(`${SELECT_SEGMENT} where s.workspace_id = $1 and s.key = $2`, [workspaceId, key]);
  return rows[0] ? toRecord(rows[0]) : null;
}

export async function findSegmentById(db: Queryable, workspaceId: string, id: string): Promise<SegmentRecord | null> {
  const { rows } = await db.query<SegmentRow>(`${SELECT_SEGMENT} where s.workspace_id = $1 and s.id = $2`, [workspaceId, id]);
  return rows[0] ? toRecord(rows[0]) : null;
}

/** The segment with this key, or 404 naming it. */
export async function getSegmentByKey(db: Queryable, workspaceId: string, key: string): Promise<SegmentRecord> {
  const segment = await findSegmentByKey(db, workspaceId, key);
  if (!segment) throw new ApiError(404, 'not_found', `No segment with key "${key}"`, 'key');
  return segment;
}

/** Segments that are not archived: the ones in_segment may name and evaluations read. */
export async function listLiveSegments(db: Queryable, workspaceId: string): Promise<SegmentRecord[]> {
  const { rows } = await db.query<SegmentRow>(`${SELECT_SEGMENT} where s.workspace_id = $1 and s.status <> 'archived' order by s.key`, [
    workspaceId,
  ]);
  return rows.map(toRecord);
}

/** key → id of the live segments, as the SQL compiler resolves in_segment. */
export function segmentIdsByKey(segments: readonly SegmentRecord[]): Map<string, string> {
  return new Map(segments.map((s) => [s.key, s.id]));
}

/** key → keys it references, for the live segments with a definition. */
export function segmentGraph(segments: readonly SegmentRecord[]): Map<string, string[]> {
  return new Map(segments.map((s) => [s.key, s.definition ? segmentReferences(s.definition).segments : []]));
}

/** The graph as it would be with `key` defined by `condition` (null: uses nothing). */
export function withDefinition(graph: SegmentGraph, key: string, condition: Condition | null): Map<string, readonly string[]> {
  const next = new Map(graph);
  next.set(key, condition ? segmentReferences(condition).segments : []);
  return next;
}

export async function listSegments(
  db: Queryable,
  workspaceId: string,
  query: SegmentListQuery,
): Promise<{ items: SegmentRecord[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  const [cursorAt, cursorId] = query.cursor ? decodeCursor(query.cursor, ['instant', 'uuid']) : [null, null];
  const { rows } = await db.query<SegmentRow>(
    `${SELECT_SEGMENT}
      where s.workspace_id = $1
        and (case when $2::text is null then s.status <> 'archived' else s.status = $2 end)
        and ($3::text is null or s.kind = $3)
        and ($4::boolean is null or s.is_tag = $4)
        and ($5::timestamptz is null or (s.created_at, s.id) < ($5, $6::uuid))
      order by s.created_at desc, s.id desc
      limit $7`,
    [workspaceId, query.status ?? null, query.kind ?? null, query.isTag ?? null, cursorAt, cursorId, limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(toRecord),
    nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at!, last.id]) : null,
  };
}

export interface NewSegment {
  key: string;
  name: string;
  description: string | null;
  kind: SegmentKind;
  definition: Condition | null;
  schedule: string | null;
  isTag: boolean;
  clientVisible?: boolean;
  template: string | null;
  state: SegmentState;
  nextRunAt: Date | null;
}

const UNIQUE_VIOLATION = '23505';

export async function insertSegment(client: DbClient, workspaceId: string, segment: NewSegment): Promise<SegmentRecord> {
  try {
    const { rows } = await client.query<{ id: string }>(
      `insert into segments (workspace_id, key, name, description, kind, definition, schedule, is_tag, template, state, next_run_at, client_visible)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) returning id`,
      [
        workspaceId,
        segment.key,
        segment.name,
        segment.description,
        segment.kind,
        segment.definition === null ? null : JSON.stringify(segment.definition),
        segment.schedule,
        segment.isTag,
        segment.template,
        segment.state,
        segment.nextRunAt,
        segment.clientVisible ?? false,
      ],
    );
    return (await findSegmentById(client, workspaceId, rows[0]!.id))!;
  } catch (error) {
    if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
      throw new ApiError(409, 'conflict', `A segment with key "${segment.key}" already exists (archived segments keep their key)`, 'key');
    }
    throw error;
  }
}

export interface SegmentChanges {
  name?: string;
  description?: string | null;
  kind?: SegmentKind;
  definition?: Condition | null;
  schedule?: string | null;
  isTag?: boolean;
  clientVisible?: boolean;
  status?: SegmentStatus;
  state?: SegmentState;
  nextRunAt?: Date | null;
}

/** Writes the given fields, bumps the version and returns the row as it now is. */
export async function updateSegmentRow(client: DbClient, workspaceId: string, id: string, changes: SegmentChanges): Promise<SegmentRecord> {
  const has = (field: keyof SegmentChanges) => Object.prototype.hasOwnProperty.call(changes, field);
  await client.query(
    `update segments set
       name = case when $3 then $4 else name end,
       description = case when $5 then $6 else description end,
       kind = case when $7 then $8 else kind end,
       definition = case when $9 then $10::jsonb else definition end,
       schedule = case when $11 then $12 else schedule end,
       is_tag = case when $13 then $14::boolean else is_tag end,
       status = case when $15 then $16 else status end,
       state = case when $17 then $18 else state end,
       next_run_at = case when $19 then $20::timestamptz else next_run_at end,
       client_visible = case when $21 then $22::boolean else client_visible end,
       version = version + 1,
       updated_at = now()
     where workspace_id = $1 and id = $2`,
    [
      workspaceId,
      id,
      has('name'),
      changes.name ?? null,
      has('description'),
      changes.description ?? null,
      has('kind'),
      changes.kind ?? null,
      has('definition'),
      changes.definition ? JSON.stringify(changes.definition) : null,
      has('schedule'),
      changes.schedule ?? null,
      has('isTag'),
      changes.isTag ?? null,
      has('status'),
      changes.status ?? null,
      has('state'),
      changes.state ?? null,
      has('nextRunAt'),
      changes.nextRunAt ?? null,
      has('clientVisible'),
      changes.clientVisible ?? null,
    ],
  );
  return (await findSegmentById(client, workspaceId, id))!;
}

export interface Member {
  profileId: string;
  enteredAt: string;
}

/** Current members by profile id, a page at a time (the membership primary key's order). */
export async function listMembers(
  db: Queryable,
  workspaceId: string,
  segmentId: string,
  page: { limit?: number; cursor?: string },
): Promise<{ items: Member[]; nextCursor: string | null }> {
  const limit = page.limit ?? 50;
  const [after] = page.cursor ? decodeCursor(page.cursor, ['uuid']) : [null];
  const { rows } = await db.query<{ profile_id: string; entered_at: Date }>(
    `select profile_id, entered_at from segment_memberships
      where workspace_id = $1 and segment_id = $2 and ($3::uuid is null or profile_id > $3)
      order by profile_id limit $4`,
    [workspaceId, segmentId, after, limit + 1],
  );
  const items = rows.slice(0, limit).map((row) => ({ profileId: row.profile_id, enteredAt: row.entered_at.toISOString() }));
  return { items, nextCursor: rows.length > limit ? encodeCursor([items.at(-1)!.profileId]) : null };
}

export interface TransitionItem {
  id: number;
  profileId: string;
  transition: 'entered' | 'exited';
  at: string;
  cause: string;
  segmentVersion: number;
}

/** Transitions of a segment in the order they were recorded (the outbox order), optionally of some profiles. */
export async function listTransitions(
  db: Queryable,
  workspaceId: string,
  segmentId: string,
  filter: { profileIds: string[] | null; transition?: 'entered' | 'exited'; limit?: number; cursor?: string },
): Promise<{ items: TransitionItem[]; nextCursor: string | null }> {
  const limit = filter.limit ?? 50;
  const [after] = filter.cursor ? decodeCursor(filter.cursor, ['integer']) : [null];
  const { rows } = await db.query<{ id: string; profile_id: string; transition: 'entered' | 'exited'; at: Date; cause: string; segment_version: number }>(
    `select id, profile_id, transition, at, cause, segment_version from segment_transitions
      where workspace_id = $1 and segment_id = $2
        and ($3::uuid[] is null or profile_id = any($3))
        and ($4::text is null or transition = $4)
        and ($5::bigint is null or id > $5)
      order by id limit $6`,
    [workspaceId, segmentId, filter.profileIds, filter.transition ?? null, after, limit + 1],
  );
  const items = rows.slice(0, limit).map((row) => ({
    id: Number(row.id),
    profileId: row.profile_id,
    transition: row.transition,
    at: row.at.toISOString(),
    cause: row.cause,
    segmentVersion: row.segment_version,
  }));
  return { items, nextCursor: rows.length > limit ? encodeCursor([String(items.at(-1)!.id)]) : null };
}

export interface ProfileSegment {
  key: string;
  name: string;
  kind: SegmentKind;
  isTag: boolean;
  enteredAt: string;
}

/** The segments a live profile is in now: one probe of segment_memberships_profile. */
export async function segmentsOfProfile(db: Queryable, workspaceId: string, profileId: string, isTag?: boolean): Promise<ProfileSegment[]> {
  const { rows } = await db.query<{ key: string; name: string; kind: SegmentKind; is_tag: boolean; entered_at: Date }>(
    `select s.key, s.name, s.kind, s.is_tag, m.entered_at
       from segment_memberships m
       join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
      where m.workspace_id = $1 and m.profile_id = $2 and s.status <> 'archived' and ($3::boolean is null or s.is_tag = $3)
      order by s.key`,
    [workspaceId, profileId, isTag ?? null],
  );
  return rows.map((row) => ({ key: row.key, name: row.name, kind: row.kind, isTag: row.is_tag, enteredAt: row.entered_at.toISOString() }));
}
