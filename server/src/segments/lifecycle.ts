import { ApiError } from '../api/errors.ts';
import { normalizeIdentifier } from '../identity/identifier-types.ts';
import { loadWorkspaceIdentity } from '../identity/settings-store.ts';
import { piiCodec, withPiiCodec } from '../privacy/pii-codec.ts';
import { withTransaction, type Db, type DbClient } from '../storage/database.ts';
import type { Condition } from './ast.ts';
import { applyMembershipChanges, computeSegmentWithDependents, recomputeDependents, type ComputeOutcome } from './compute.ts';
import { nextRunAfter, scheduleError } from './cron.ts';
import { checkDefinition, conditionFromInput, inspectDefinition, type Issue } from './definition.ts';
import { directUsers, findCycle } from './dependencies.ts';
import { lockWorkspaceSegments } from './lock.ts';
import { segmentReferences } from './references.ts';
import type { CreateSegment, ListUpload, ListUploadResult, UpdateSegment } from './schemas.ts';
import {
  findSegmentById,
  getSegmentByKey,
  insertSegment,
  listLiveSegments,
  segmentGraph,
  segmentRef,
  updateSegmentRow,
  withDefinition,
  type SegmentChanges,
  type SegmentRecord,
} from './store.ts';
import { prepareTransitionStorage, type MembershipChange } from './transitions.ts';

/*
 * What happens when a segment is created, edited, archived, refreshed or given a list: the
 * checks, the row, and the computation that follows. Row writes that depend on the other segments
 * (references, cycles, archiving) run under the workspace segment lock, so two concurrent edits
 * cannot together build a cycle or archive a segment another one just started to use.
 */

export interface SavedSegment {
  segment: SegmentRecord;
  warnings: Issue[];
  /** The segment's computation and its dependents', in order; empty when nothing was computed. */
  computed: ComputeOutcome[];
}

async function workspaceTimeZone(db: Db, workspaceId: string): Promise<string> {
  const { rows } = await db.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
  if (!rows[0]) throw new ApiError(404, 'not_found', 'Workspace not found');
  return rows[0].time_zone;
}

function requireSchedule(schedule: string | null | undefined, timeZone: string): string {
  if (!schedule) throw new ApiError(400, 'invalid_request', 'A periodic segment needs a schedule, e.g. "0 2 * * *" for 02:00 daily', 'schedule');
  const problem = scheduleError(schedule, timeZone);
  if (problem) throw new ApiError(400, 'invalid_schedule', `schedule: ${problem}`, 'schedule');
  return schedule.trim();
}

/**
 * Refuses a definition naming segments that are no longer live, or closing an in_segment cycle
 * through `key`. Call under the workspace segment lock with the live segments read there.
 */
function checkReferences(live: readonly SegmentRecord[], key: string, condition: Condition, field: string): void {
  const liveKeys = new Set(live.map((s) => s.key));
  const missing = segmentReferences(condition).segments.filter((used) => used !== key && !liveKeys.has(used));
  if (missing.length > 0) {
    throw new ApiError(400, 'invalid_segment', `in_segment names ${missing.map((k) => `"${k}"`).join(', ')}, which is not a segment of this workspace`, field);
  }
  const cycle = findCycle(withDefinition(segmentGraph(live), key, condition), key);
  if (cycle) {
    throw new ApiError(400, 'segment_cycle', `in_segment cycle: ${cycle.map((k) => `"${k}"`).join(' → ')}; a segment cannot depend on itself`, field, {}, {
      cycle,
    });
  }
}

export async function createSegment(db: Db, workspaceId: string, input: CreateSegment, now: Date): Promise<SavedSegment> {
  if (!input.key.trim()) throw new ApiError(400, 'invalid_request', 'key must not be blank', 'key');
  const condition = conditionFromInput(input);
  const field = input.text !== undefined ? 'text' : 'definition';
  if (input.kind !== 'static' && !condition) {
    throw new ApiError(400, 'invalid_request', `A ${input.kind} segment needs a definition or text`, 'definition');
  }
  const timeZone = await workspaceTimeZone(db, workspaceId);
  let schedule: string | null = null;
  if (input.kind === 'periodic') schedule = requireSchedule(input.schedule, timeZone);
  else if (input.schedule !== undefined) throw new ApiError(400, 'invalid_request', 'Only periodic segments have a schedule', 'schedule');

  const warnings = condition
    ? await checkDefinition(db, workspaceId, condition, {
        field,
        selfKey: input.key,
        segmentKeys: (await listLiveSegments(db, workspaceId)).map((s) => s.key),
      })
    : [];

  const created = await withTransaction(db, async (client) => {
    await lockWorkspaceSegments(client, workspaceId);
    if (condition) checkReferences(await listLiveSegments(client, workspaceId), input.key, condition, field);
    return insertSegment(client, workspaceId, {
      key: input.key,
      name: input.name,
      description: input.description ?? null,
      kind: input.kind,
      definition: condition,
      schedule,
      isTag: input.isTag ?? false,
      clientVisible: input.clientVisible ?? false,
      template: input.template ?? null,
      // A static list has nothing to compute: it is ready, and empty, until members are uploaded.
      state: condition ? 'computing' : 'ready',
      nextRunAt: schedule ? nextRunAfter(schedule, timeZone, now) : null,
    });
  });
  const computed = condition ? await computeSegmentWithDependents(db, workspaceId, created.id, now) : [];
  return { segment: (await findSegmentById(db, workspaceId, created.id))!, warnings, computed };
}

export async function updateSegment(db: Db, workspaceId: string, key: string, input: UpdateSegment, now: Date): Promise<SavedSegment> {
  const current = await getSegmentByKey(db, workspaceId, key);
  if (current.status === 'archived') throw new ApiError(409, 'archived', `Segment "${key}" is archived and cannot be edited`, 'key');
  const condition = conditionFromInput(input);
  const field = input.text !== undefined ? 'text' : 'definition';
  const kind = input.kind ?? current.kind;
  if ((current.kind === 'static') !== (kind === 'static')) {
    throw new ApiError(
      409,
      'kind_change_refused',
      `A ${current.kind} segment cannot become ${kind}: a static segment's members are a snapshot or a list, a ${current.kind === 'static' ? kind : current.kind} segment's follow its definition. Create a new segment instead`,
      'kind',
    );
  }
  if (condition && current.kind === 'static' && current.definition === null) {
    throw new ApiError(409, 'list_segment', `Segment "${key}" is an uploaded list; create a new segment to define members by a condition`, field);
  }

  const timeZone = current.timeZone;
  const changes: SegmentChanges = {};
  if (input.name !== undefined) changes.name = input.name;
  if (input.description !== undefined) changes.description = input.description;
  if (input.isTag !== undefined) changes.isTag = input.isTag;
  if (input.clientVisible !== undefined) changes.clientVisible = input.clientVisible;
  if (input.status !== undefined) changes.status = input.status;
  if (input.kind !== undefined) changes.kind = input.kind;
  if (condition) changes.definition = condition;
  if (kind === 'periodic') {
    const schedule = requireSchedule(input.schedule === undefined ? current.schedule : input.schedule, timeZone);
    if (schedule !== current.schedule || current.kind !== 'periodic') {
      changes.schedule = schedule;
      changes.nextRunAt = nextRunAfter(schedule, timeZone, now);
    }
  } else {
    if (input.schedule) throw new ApiError(400, 'invalid_request', 'Only periodic segments have a schedule', 'schedule');
    if (current.schedule !== null) {
      changes.schedule = null;
      changes.nextRunAt = null;
    }
  }

  const status = input.status ?? current.status;
  const resumed = current.status === 'paused' && status === 'active';
  // A paused segment keeps its membership frozen, even when its definition changes; resuming it computes.
  // A periodic segment's members are as of its last run; becoming realtime brings them up to date.
  const nowRealtime = kind === 'realtime' && current.kind !== 'realtime';
  const recompute = status === 'active' && (condition !== null || resumed || nowRealtime);
  // A new definition left uncomputed (paused) no longer matches the membership: due on resume.
  if (recompute || condition !== null) changes.state = 'computing';

  const warnings = condition
    ? await checkDefinition(db, workspaceId, condition, {
        field,
        selfKey: key,
        segmentKeys: (await listLiveSegments(db, workspaceId)).map((s) => s.key),
      })
    : [];

  await withTransaction(db, async (client) => {
    await lockWorkspaceSegments(client, workspaceId);
    if (condition) checkReferences(await listLiveSegments(client, workspaceId), key, condition, field);
    await updateSegmentRow(client, workspaceId, current.id, changes);
  });
  const computed = recompute ? await computeSegmentWithDependents(db, workspaceId, current.id, now) : [];
  return { segment: (await findSegmentById(db, workspaceId, current.id))!, warnings, computed };
}

/**
 * Archives a segment: it is no longer evaluated, listed or shown on profiles, and its key stays
 * taken. Its membership rows stay as they were (no exits are emitted). Refused (409, naming them)
 * while live segments use it through in_segment.
 */
export async function archiveSegment(db: Db, workspaceId: string, key: string): Promise<SegmentRecord> {
  return withTransaction(db, async (client) => {
    await lockWorkspaceSegments(client, workspaceId);
    const current = await getSegmentByKey(client, workspaceId, key);
    if (current.status === 'archived') return current;
    const users = directUsers(segmentGraph(await listLiveSegments(client, workspaceId)), key);
    if (users.length > 0) {
      throw new ApiError(
        409,
        'segment_in_use',
        `Segment "${key}" is used by ${users.map((k) => `"${k}"`).join(', ')} (in_segment); change or archive ${users.length === 1 ? 'it' : 'them'} first`,
        'key',
        {},
        { usedBy: users },
      );
    }
    return updateSegmentRow(client, workspaceId, current.id, { status: 'archived' });
  });
}

/** Computes a segment now (a static snapshot is taken again), then the segments that use it. */
export async function refreshSegment(db: Db, workspaceId: string, key: string, now: Date): Promise<SavedSegment> {
  const current = await getSegmentByKey(db, workspaceId, key);
  if (current.status === 'archived') throw new ApiError(409, 'archived', `Segment "${key}" is archived`, 'key');
  if (current.definition === null) {
    throw new ApiError(409, 'list_segment', `Segment "${key}" is an uploaded list: change its members with POST /v1/segments/{key}/members`, 'key');
  }
  const computed = await computeSegmentWithDependents(db, workspaceId, current.id, now);
  return { segment: (await findSegmentById(db, workspaceId, current.id))!, warnings: [], computed };
}

interface ResolvedIdentifiers {
  /** Distinct live profiles the identifiers found. */
  profileIds: string[];
  matched: number;
  unknown: ListUploadResult['unknown'];
  invalid: ListUploadResult['invalid'];
}

/**
 * Each identifier normalised as identity resolution stores it, then looked up among the live
 * links of live profiles. Nothing is dropped: every identifier is matched, unknown or invalid.
 */
async function resolveIdentifiers(db: Db, workspaceId: string, identifiers: ListUpload['identifiers']): Promise<ResolvedIdentifiers> {
  const { config: plainConfig } = await loadWorkspaceIdentity(db, workspaceId);
  // PII identifiers (email, phone…) are stored as keyed-hash tokens: matched as tokens (privacy/pii-codec.ts).
  const codec = await piiCodec(db, workspaceId);
  const config = withPiiCodec(plainConfig, codec);
  const invalid: ListUploadResult['invalid'] = [];
  const valid: Array<{ index: number; type: string; value: string }> = [];
  identifiers.forEach((identifier, index) => {
    const normalized = normalizeIdentifier(config, identifier.type, identifier.value);
    if (normalized.ok) valid.push({ index, type: normalized.type, value: normalized.value });
    else invalid.push({ index, type: identifier.type, value: identifier.value, reason: normalized.message });
  });
  const { rows } = await db.query<{ index: number; profile_id: string }>(
    `select i.index, pi.profile_id
       from unnest($2::int[], $3::text[], $4::text[]) as i(index, type, value)
       join profile_identifiers pi on pi.workspace_id = $1 and pi.type = i.type and pi.value = i.value and pi.unbound_at is null
       join profiles p on p.workspace_id = $1 and p.id = pi.profile_id and p.merged_into is null`,
    [workspaceId, valid.map((v) => v.index), valid.map((v) => v.type), valid.map((v) => v.value)],
  );
  const found = new Set(rows.map((row) => row.index));
  const unknown = valid
    .filter((v) => !found.has(v.index))
    .map((v) => ({ index: v.index, type: v.type, value: identifiers[v.index]!.value, reason: `No profile has ${v.type} ${String(codec.identifiers.open(v.value))}` }));
  return { profileIds: [...new Set(rows.map((row) => row.profile_id))].sort(), matched: found.size, unknown, invalid };
}

/**
 * Adds, removes or replaces the members of a static list segment from identifiers, recording
 * each real transition with cause 'list'; then recomputes the segments that use it.
 */
export async function uploadSegmentMembers(db: Db, workspaceId: string, key: string, upload: ListUpload, now: Date): Promise<ListUploadResult> {
  await listSegmentOrRefuse(db, workspaceId, key);
  const resolved = await resolveIdentifiers(db, workspaceId, upload.identifiers);
  const applied = await setListMembers(db, workspaceId, key, resolved.profileIds, upload.mode, now);
  return {
    mode: upload.mode,
    received: upload.identifiers.length,
    matched: resolved.matched,
    profiles: resolved.profileIds.length,
    entered: applied.entered,
    exited: applied.exited,
    memberCount: applied.memberCount,
    unknown: resolved.unknown,
    invalid: resolved.invalid,
  };
}

/** The static list segment `key`, or the 409 that says why members cannot be set on it. */
async function listSegmentOrRefuse(db: Db, workspaceId: string, key: string) {
  const current = await getSegmentByKey(db, workspaceId, key);
  if (current.status === 'archived') throw new ApiError(409, 'archived', `Segment "${key}" is archived`, 'key');
  if (current.kind !== 'static' || current.definition !== null) {
    throw new ApiError(
      409,
      'not_a_list',
      `Segment "${key}" is defined by a condition; members can be uploaded only to a static segment created without one`,
      'key',
    );
  }
  return current;
}

/**
 * Adds, removes or replaces the members of a static list segment by profile id (live profiles the
 * caller found: an upload's resolved identifiers, or a funnel's drop-offs), recording each real
 * transition with cause 'list'; then recomputes the segments that use it.
 */
export async function setListMembers(
  db: Db,
  workspaceId: string,
  key: string,
  profileIds: readonly string[],
  mode: ListUpload['mode'],
  now: Date,
): Promise<{ entered: number; exited: number; memberCount: number }> {
  const current = await listSegmentOrRefuse(db, workspaceId, key);
  await prepareTransitionStorage(db, now);
  const applied = await withTransaction(db, async (client) => {
    await lockWorkspaceSegments(client, workspaceId);
    const segment = (await findSegmentById(client, workspaceId, current.id))!;
    const ref = segmentRef(segment);
    const member = mode !== 'remove';
    const changes: MembershipChange[] = profileIds.map((profileId) => ({ segment: ref, profileId, member }));
    if (mode === 'replace') changes.push(...(await membersOutside(client, workspaceId, segment.id, profileIds)).map((profileId) => ({ segment: ref, profileId, member: false })));
    const counts = await applyMembershipChanges(client, workspaceId, changes, 'list', now);
    const { rows } = await client.query<{ member_count: number }>(
      `update segments set computed_at = $3, state = 'ready', last_error = null,
              member_count = (select count(*) from segment_memberships where workspace_id = $1 and segment_id = $2)
        where workspace_id = $1 and id = $2 returning member_count`,
      [workspaceId, segment.id, now],
    );
    return { ...counts, memberCount: rows[0]!.member_count };
  });
  if (applied.entered + applied.exited > 0) await recomputeDependents(db, workspaceId, key, now);
  return applied;
}

async function membersOutside(client: DbClient, workspaceId: string, segmentId: string, keep: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ profile_id: string }>(
    `select profile_id from segment_memberships where workspace_id = $1 and segment_id = $2
     except
     select unnest($3::uuid[])`,
    [workspaceId, segmentId, keep],
  );
  return rows.map((row) => row.profile_id);
}

/** The checker's warnings for a stored segment (its errors were refused when it was saved). */
export async function segmentWarnings(db: Db, segment: SegmentRecord): Promise<Issue[]> {
  if (!segment.definition) return [];
  const live = await listLiveSegments(db, segment.workspaceId);
  const { warnings } = await inspectDefinition(db, segment.workspaceId, segment.definition, {
    selfKey: segment.key,
    segmentKeys: live.map((s) => s.key),
  });
  return warnings;
}
