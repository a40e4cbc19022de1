import { ApiError } from '../api/errors.ts';
import { decodeCursor, encodeCursor } from '../api/pagination.ts';
import { cancelMessages, holdMessages } from '../channels/index.ts';
import type { CheckTemplate } from '../channels/contract.ts';
import { listLiveSegments } from '../segments/store.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { withTransaction, type Db, type DbClient, type Queryable } from '../storage/database.ts';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';
import { journeyVariables, nodeById, type JourneyDefinition, type Trigger } from './definition.ts';
import { finishInstance, INSTANCE_COLUMNS, loadVersion, saveInstance, settleLastStep, type EndReason, type InstanceRow } from './instances.ts';
import { syncJourneySchedule } from './schedules.ts';
import { validateJourney, type Problem } from './validate.ts';

/*
 * Journeys and their lifecycle: draft → published (a frozen version) → paused ⇄ published →
 * archived. Editing a live journey edits its draft; publishing the draft makes a new version and
 * moves running instances onto it by node id (see publishJourney).
 */

export type JourneyStatus = 'draft' | 'published' | 'paused' | 'archived';

export interface JourneyRecord {
  id: string;
  key: string;
  name: string;
  description: string | null;
  status: JourneyStatus;
  draft: JourneyDefinition;
  currentVersion: number | null;
  enteredCount: number;
  createdAt: Date;
  updatedAt: Date;
}

interface JourneyRow {
  id: string;
  key: string;
  name: string;
  description: string | null;
  status: JourneyStatus;
  draft: JourneyDefinition;
  current_version: number | null;
  entered_count: number;
  created_at: Date;
  updated_at: Date;
  cursor_at?: string;
}

const toRecord = (row: JourneyRow): JourneyRecord => ({
  id: row.id,
  key: row.key,
  name: row.name,
  description: row.description,
  status: row.status,
  draft: row.draft,
  currentVersion: row.current_version,
  enteredCount: row.entered_count,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const SELECT_JOURNEY = `select id, key, name, description, status, draft, current_version, entered_count, created_at, updated_at,
  to_json(created_at)#>>'{}' as cursor_at from journeys`;

export async function getJourney(db: Queryable, workspaceId: string, key: string, lock = false): Promise<JourneyRecord> {
  const { rows } = await db.query<JourneyRow>(`${SELECT_JOURNEY} where workspace_id = $1 and key = $2${lock ? ' for update' : ''}`, [workspaceId, key]);
  if (!rows[0]) throw new NotFoundError(`No journey "${key}"`);
  return toRecord(rows[0]);
}

export async function listJourneys(
  db: Queryable,
  workspaceId: string,
  query: { status?: JourneyStatus; limit?: number; cursor?: string },
): Promise<{ items: JourneyRecord[]; nextCursor: string | null }> {
  const limit = query.limit ?? 50;
  const [cursorAt, cursorId] = query.cursor ? decodeCursor(query.cursor, ['instant', 'uuid']) : [null, null];
  const { rows } = await db.query<JourneyRow>(
    `${SELECT_JOURNEY}
      where workspace_id = $1 and ($2::text is null or status = $2)
        and ($3::timestamptz is null or (created_at, id) < ($3, $4::uuid))
      order by created_at desc, id desc limit $5`,
    [workspaceId, query.status ?? null, cursorAt, cursorId, limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { items: page.map(toRecord), nextCursor: rows.length > limit && last ? encodeCursor([last.cursor_at!, last.id]) : null };
}

export interface NewJourney {
  key: string;
  name: string;
  description?: string;
  definition: JourneyDefinition;
}

export async function createJourney(db: Queryable, workspaceId: string, input: NewJourney): Promise<JourneyRecord> {
  const { rows } = await db.query<JourneyRow>(
    `insert into journeys (workspace_id, key, name, description, draft) values ($1, $2, $3, $4, $5)
     on conflict (workspace_id, key) do nothing
     returning id, key, name, description, status, draft, current_version, entered_count, created_at, updated_at`,
    [workspaceId, input.key, input.name, input.description ?? null, JSON.stringify(input.definition)],
  );
  if (!rows[0]) throw new ConflictError(`A journey with key "${input.key}" already exists`);
  return toRecord(rows[0]);
}

/** Edits name, description or the draft; a live journey keeps running its published version until the draft is published. */
export async function updateJourney(
  db: Queryable,
  workspaceId: string,
  key: string,
  changes: { name?: string; description?: string | null; definition?: JourneyDefinition },
): Promise<JourneyRecord> {
  const current = await getJourney(db, workspaceId, key);
  if (current.status === 'archived') throw new ApiError(409, 'journey_archived', `Journey "${key}" is archived and cannot be edited`);
  const { rows } = await db.query<JourneyRow>(
    `update journeys set name = coalesce($3, name), description = case when $4 then $5 else description end,
            draft = coalesce($6::jsonb, draft), updated_at = now()
      where workspace_id = $1 and key = $2
      returning id, key, name, description, status, draft, current_version, entered_count, created_at, updated_at`,
    [
      workspaceId,
      key,
      changes.name ?? null,
      changes.description !== undefined,
      changes.description ?? null,
      changes.definition === undefined ? null : JSON.stringify(changes.definition),
    ],
  );
  return toRecord(rows[0]!);
}

export interface JourneyChecks {
  /** channels/ checks each send node's template; absent: templates are checked at send time only. */
  checkTemplate?: CheckTemplate;
}

/** Every problem of a definition in this workspace (empty: it can be published). */
export async function journeyProblems(db: Db, workspaceId: string, definition: JourneyDefinition, checks: JourneyChecks = {}): Promise<Problem[]> {
  const segments = await listLiveSegments(db, workspaceId);
  const { rows: zones } = await db.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
  const problems = validateJourney(definition, { segmentKeys: new Set(segments.map((s) => s.key)), timeZone: zones[0]?.time_zone ?? 'UTC' });
  if (checks.checkTemplate) {
    const checkTemplate = checks.checkTemplate;
    const entry = definition.nodes.find((node) => node.kind === 'entry');
    const eventProperties = entry?.kind === 'entry' ? await triggerProperties(db, workspaceId, entry.trigger) : [];
    // The executor passes these as `journey.*` (definition.ts journeyVariables).
    const variableNames = Object.keys(journeyVariables(definition, '', 0));
    for (const [i, node] of definition.nodes.entries()) {
      if (node.kind !== 'send' && node.kind !== 'webhook') continue;
      const channel = node.kind === 'send' ? node.channel : 'webhook';
      const found = await checkTemplate(db, workspaceId, { templateKey: node.template, channel, eventProperties, journeyVariables: variableNames });
      for (const problem of found) {
        problems.push({ node: node.id, field: `nodes.${i}.template`, message: `Template "${node.template}" ${problem.path}: ${problem.message}` });
      }
    }
  }
  return problems;
}

/**
 * What templates may read as `event.*`: the trigger event's top-level properties as the catalogue
 * has seen them, plus those the trigger declares; for the other triggers, the variables their
 * entry passes (intake.ts, schedules.ts).
 */
export async function triggerProperties(db: Queryable, workspaceId: string, trigger: Trigger): Promise<string[]> {
  switch (trigger.kind) {
    case 'event': {
      const { rows } = await db.query<{ name: string }>(
        `select distinct regexp_replace(split_part(path, '.', 1), '\\[\\]$', '') as name from event_catalogue_properties
          where workspace_id = $1 and event_type = 'track' and event_name = $2 and scope = 'properties'`,
        [workspaceId, trigger.event],
      );
      return [...new Set([...rows.map((row) => row.name), ...(trigger.properties ?? [])])].sort();
    }
    case 'segment':
      return ['segment_key', 'transition'];
    case 'schedule':
      return ['segment_key', 'scheduled_at'];
    case 'date':
      return ['trait', 'date', 'occurrence'];
    case 'api':
      return [...(trigger.properties ?? [])];
  }
}

export function refuseProblems(problems: Problem[]): void {
  const first = problems[0];
  if (!first) return;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  throw new ApiError(400, 'invalid_journey', `${first.node ? `node "${first.node}": ` : ''}${first.message}${more}`, `definition.${first.field}`, {}, {
    problems,
  });
}

export interface PublishResult {
  journey: JourneyRecord;
  version: number;
  /** Running instances moved onto the new version (their node exists in it). */
  migrated: number;
  /** Running instances ended because their node is gone from the new version. */
  exited: number;
}

/**
 * Freezes the draft as the next version and makes it live. Running instances of earlier versions
 * continue on the new version at the node with the same id (a waiting one keeps its due time);
 * an instance whose node no longer exists, or is now a different kind of node, exits with the
 * reason `exited` and a detail naming the node. New entries take the new version.
 */
export async function publishJourney(
  db: Db,
  workspaceId: string,
  key: string,
  now: Date,
  checks: JourneyChecks = {},
  /** Running instances at a key's node move to the value's node (same kind) instead of the node with the same id. */
  mapping: Readonly<Record<string, string>> = {},
): Promise<PublishResult> {
  const draft = await getJourney(db, workspaceId, key);
  if (draft.status === 'archived') throw new ApiError(409, 'journey_archived', `Journey "${key}" is archived and cannot be published`);
  refuseProblems(await journeyProblems(db, workspaceId, draft.draft, checks));
  for (const [from, to] of Object.entries(mapping)) {
    if (!nodeById(draft.draft, to)) throw new ApiError(400, 'invalid_mapping', `Mapping "${from}" → "${to}": the new version has no node "${to}"`, `mapping.${from}`);
  }
  await prepareTransitionStorage(db, now);
  return withTransaction(db, async (client) => {
    const journey = await getJourney(client, workspaceId, key, true);
    if (journey.status === 'archived') throw new ApiError(409, 'journey_archived', `Journey "${key}" is archived and cannot be published`);
    if (JSON.stringify(journey.draft) !== JSON.stringify(draft.draft)) {
      throw new ApiError(409, 'journey_changed', `Journey "${key}" was edited while it was being published; publish again`);
    }
    const version = (journey.currentVersion ?? 0) + 1;
    await client.query('insert into journey_versions (workspace_id, journey_id, version, definition, published_at) values ($1, $2, $3, $4, $5)', [
      workspaceId,
      journey.id,
      version,
      JSON.stringify(journey.draft),
      now,
    ]);
    await startCursors(client, workspaceId, journey.id);
    await syncJourneySchedule(client, workspaceId, journey.id, journey.draft, now);
    // A paused journey stays paused: publishing is not resuming.
    const status: JourneyStatus = journey.status === 'paused' ? 'paused' : 'published';
    const { rows } = await client.query<JourneyRow>(
      `update journeys set status = $3, current_version = $4, updated_at = now() where workspace_id = $1 and id = $2
       returning id, key, name, description, status, draft, current_version, entered_count, created_at, updated_at`,
      [workspaceId, journey.id, status, version],
    );
    const { migrated, exited } = await migrateInstances(client, workspaceId, journey.id, version, now, mapping);
    return { journey: toRecord(rows[0]!), version, migrated, exited };
  });
}

async function migrateInstances(
  client: DbClient,
  workspaceId: string,
  journeyId: string,
  version: number,
  now: Date,
  mapping: Readonly<Record<string, string>>,
): Promise<{ migrated: number; exited: number }> {
  const target = await loadVersion(client, workspaceId, journeyId, version);
  const { rows } = await client.query<InstanceRow>(
    `select ${INSTANCE_COLUMNS} from journey_instances i
      where i.workspace_id = $1 and i.journey_id = $2 and i.status = 'active' and i.version <> $3 for update`,
    [workspaceId, journeyId, version],
  );
  const events: SystemEvent[] = [];
  let migrated = 0;
  for (const instance of rows) {
    const from = await loadVersion(client, workspaceId, journeyId, instance.version);
    const before = nodeById(from.definition, instance.node_id);
    // The operator's mapping moves an instance from a node to another of the same kind; other nodes map by id.
    const mapped = mapping[instance.node_id] ?? instance.node_id;
    const after = nodeById(target.definition, mapped);
    if (after && before && after.kind === before.kind) {
      instance.version = version;
      instance.node_id = mapped;
      migrated++;
    } else {
      const why = after ? `node "${mapped}" is a ${after.kind} in version ${version}` : `node "${mapped}" was removed in version ${version}`;
      finishInstance(instance, from, 'exited', why, now, events);
    }
    await saveInstance(client, instance);
  }
  await insertSystemEvents(client, workspaceId, events, now);
  return { migrated, exited: rows.length - migrated };
}

/**
 * The workspace's entry cursors start at what exists now: publishing never replays history. When
 * no other journey of the workspace is live, the cursors were left behind and move to now.
 */
async function startCursors(client: DbClient, workspaceId: string, journeyId: string): Promise<void> {
  const { rows } = await client.query<{ others: number }>(
    `select count(*)::int as others from journeys where workspace_id = $1 and id <> $2 and status in ('published', 'paused')`,
    [workspaceId, journeyId],
  );
  const reset = rows[0]!.others === 0;
  await client.query(
    `insert into journey_cursors (workspace_id, source, position)
     values ($1, 'events', coalesce(pg_sequence_last_value('events_seq'), 0)),
            ($1, 'transitions', coalesce(pg_sequence_last_value(pg_get_serial_sequence('segment_transitions', 'id')::regclass), 0))
     on conflict (workspace_id, source) do update set position = greatest(journey_cursors.position, excluded.position) where $2`,
    [workspaceId, reset],
  );
}

/**
 * Pause: nothing enters, the executor takes none of its instances, and the journey's messages
 * still queued in channels' outbox are held (not sent) until resume. The journey row is locked
 * FOR UPDATE: a step of the journey that is committing (it holds the row FOR SHARE) commits first,
 * so what it queued is held too; a later step sees the pause and does nothing.
 */
export async function pauseJourney(db: Db, workspaceId: string, key: string): Promise<JourneyRecord> {
  return withTransaction(db, async (client) => {
    const journey = await setStatus(client, workspaceId, key, ['published'], 'paused');
    await holdMessages(client, workspaceId, journey.id, true);
    return journey;
  });
}

/** Resume: held messages are queued again and held instances continue (overdue ones at once). */
export async function resumeJourney(db: Db, workspaceId: string, key: string): Promise<JourneyRecord> {
  return withTransaction(db, async (client) => {
    const journey = await setStatus(client, workspaceId, key, ['paused'], 'published');
    await holdMessages(client, workspaceId, journey.id, false);
    return journey;
  });
}

async function setStatus(client: DbClient, workspaceId: string, key: string, from: JourneyStatus[], to: JourneyStatus): Promise<JourneyRecord> {
  const journey = await getJourney(client, workspaceId, key, true);
  if (!from.includes(journey.status)) {
    throw new ApiError(409, 'invalid_state', `Journey "${key}" is ${journey.status}; only a ${from.join(' or ')} journey can become ${to}`, 'status');
  }
  const { rows } = await client.query<JourneyRow>(
    `update journeys set status = $3, updated_at = now() where workspace_id = $1 and id = $2
     returning id, key, name, description, status, draft, current_version, entered_count, created_at, updated_at`,
    [workspaceId, journey.id, to],
  );
  return toRecord(rows[0]!);
}

/** Stops a journey for good: nothing enters any more and every running instance exits (`stopped`). */
export async function archiveJourney(
  db: Db,
  workspaceId: string,
  key: string,
  now: Date,
): Promise<{ journey: JourneyRecord; stopped: number; cancelledMessages: number }> {
  await prepareTransitionStorage(db, now);
  return withTransaction(db, async (client) => {
    const journey = await getJourney(client, workspaceId, key, true);
    if (journey.status === 'archived') return { journey, stopped: 0, cancelledMessages: 0 };
    const { rows: updated } = await client.query<JourneyRow>(
      `update journeys set status = 'archived', updated_at = now() where workspace_id = $1 and id = $2
       returning id, key, name, description, status, draft, current_version, entered_count, created_at, updated_at`,
      [workspaceId, journey.id],
    );
    const stopped = await endInstances(client, workspaceId, { journeyId: journey.id }, 'stopped', 'journey archived', now);
    // Queued or held messages of the journey are cancelled, each with the reason in its history.
    const cancelledMessages = await cancelMessages(client, workspaceId, { journeyId: journey.id }, 'journey_stopped');
    return { journey: toRecord(updated[0]!), stopped, cancelledMessages };
  });
}

/** Ends running instances (of a journey, or one instance) with a reason; returns how many. */
export async function endInstances(
  client: DbClient,
  workspaceId: string,
  filter: { journeyId?: string; instanceId?: string },
  reason: EndReason,
  detail: string | null,
  now: Date,
): Promise<number> {
  const { rows } = await client.query<InstanceRow>(
    `select ${INSTANCE_COLUMNS} from journey_instances i
      where i.workspace_id = $1 and i.status = 'active' and ($2::uuid is null or i.journey_id = $2) and ($3::uuid is null or i.id = $3)
      for update`,
    [workspaceId, filter.journeyId ?? null, filter.instanceId ?? null],
  );
  const events: SystemEvent[] = [];
  for (const instance of rows) {
    finishInstance(instance, await loadVersion(client, workspaceId, instance.journey_id, instance.version), reason, detail, now, events);
    await saveInstance(client, instance);
  }
  await insertSystemEvents(client, workspaceId, events, now);
  return rows.length;
}

/**
 * An operator skips the wait an instance is in. A delay (or a wait taking `timedOut`) becomes due
 * now, and the executor resumes it as if its timer had run out; a wait taking `happened` moves on
 * to that branch at once. The waiting step records `skipped_by: operator`.
 */
export async function skipWait(db: Db, workspaceId: string, journeyId: string, instanceId: string, branch: 'happened' | 'timedOut', now: Date): Promise<void> {
  await withTransaction(db, async (client) => {
    const { rows } = await client.query<InstanceRow>(
      `select ${INSTANCE_COLUMNS} from journey_instances i where i.workspace_id = $1 and i.journey_id = $2 and i.id = $3 for update`,
      [workspaceId, journeyId, instanceId],
    );
    const instance = rows[0];
    if (!instance) throw new ApiError(404, 'not_found', `No instance ${instanceId} in this journey`, 'instanceId');
    if (instance.status !== 'active' || instance.phase !== 'wait') throw new ApiError(409, 'not_waiting', 'The instance is not waiting', 'instanceId');
    const version = await loadVersion(client, workspaceId, journeyId, instance.version);
    const node = nodeById(version.definition, instance.node_id);
    if (branch === 'happened' && (node?.kind === 'wait' || node?.kind === 'segment_wait')) {
      await settleLastStep(client, instance, 'skipped', { skipped_by: 'operator', branch: 'happened' });
      instance.node_id = node.happened;
      instance.phase = 'arrive';
      instance.wait_started_at = null;
    } else {
      await settleLastStep(client, instance, 'waiting', { skipped_by: 'operator' });
    }
    instance.due_at = now;
    await saveInstance(client, instance);
  });
}
