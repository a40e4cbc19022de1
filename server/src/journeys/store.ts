import { ApiError } from '../api/errors.ts';
import { decodeCursor, encodeCursor } from '../api/pagination.ts';
import { cancelMessages, holdMessages } from '../channels/index.ts';
import type { CheckTemplate } from '../channels/contract.ts';
import { knownTraits } from '../segments/definition.ts';
import { listLiveSegments } from '../segments/store.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { withTransaction, type Db, type DbClient, type Queryable } from '../storage/database.ts';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';
import { journeyVariables, nodeById, type JourneyDefinition, type Trigger } from './definition.ts';
import { finishInstance, INSTANCE_COLUMNS, loadVersion, saveInstance, settleLastStep, type EndReason, type InstanceRow, type JourneyVersion } from './instances.ts';
import { syncJourneySchedule } from './schedules.ts';
import { validateJourney, type Problem } from './validate.ts';

/*
 * Journeys and their lifecycle: draft → published (a frozen version) → paused ⇄ published →
 * archived. Editing a live journey edits its draft; publishing the draft makes a new version for
 * new entries, while running instances stay on theirs unless the operator migrates them
 * (publishJourney, migrateJourney).
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
  return (await journeyCheck(db, workspaceId, definition, checks)).problems;
}

/**
 * Problems (publishing refuses them) and warnings (it does not) of a definition in this
 * workspace. Each send and webhook template is checked with what the send will have: `event.*`
 * and `journey.*` names that the send will not have are problems (a blank at send time is never
 * acceptable, and the trigger may declare properties the catalogue has not seen yet); a
 * `traits.*` name no identify call, computed trait, update_trait node or stored profile has is a
 * warning naming node, field and trait (a new trait may simply not have been sent yet; a send to
 * a profile without it fails as `render_error` unless the template gives a `default`).
 */
export async function journeyCheck(
  db: Db,
  workspaceId: string,
  definition: JourneyDefinition,
  checks: JourneyChecks = {},
): Promise<{ problems: Problem[]; warnings: Problem[] }> {
  const segments = await listLiveSegments(db, workspaceId);
  const { rows: zones } = await db.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
  const problems = validateJourney(definition, { segmentKeys: new Set(segments.map((s) => s.key)), timeZone: zones[0]?.time_zone ?? 'UTC' });
  const warnings: Problem[] = [];
  if (!checks.checkTemplate) return { problems, warnings };
  const checkTemplate = checks.checkTemplate;
  const templated = definition.nodes.flatMap((node, i) => (node.kind === 'send' || node.kind === 'webhook' ? [{ node, i }] : []));
  if (templated.length === 0) return { problems, warnings };
  const entry = definition.nodes.find((node) => node.kind === 'entry');
  const eventProperties = entry?.kind === 'entry' ? await triggerProperties(db, workspaceId, entry.trigger) : [];
  // The executor passes these as `journey.*` (definition.ts journeyVariables).
  const variableNames = Object.keys(journeyVariables(definition, '', 0));
  // Traits the catalogue knows, plus those this journey writes itself (update_trait, tags).
  const traits = new Set(await knownTraits(db, workspaceId, []));
  for (const node of definition.nodes) {
    if (node.kind !== 'update_trait') continue;
    for (const key of Object.keys(node.set ?? {})) traits.add(key);
    if (node.addTags) traits.add('tags');
  }
  const unknown: Array<{ nodeId: string; i: number; template: string; path: string; message: string; trait: string }> = [];
  for (const { node, i } of templated) {
    if (node.kind !== 'send' && node.kind !== 'webhook') continue;
    const channel = node.kind === 'send' ? node.channel : 'webhook';
    const found = await checkTemplate(db, workspaceId, { templateKey: node.template, channel, eventProperties, journeyVariables: variableNames, traits: [...traits] });
    for (const problem of found) {
      if (problem.severity === 'warning' && problem.variable?.startsWith('traits.')) {
        unknown.push({ nodeId: node.id, i, template: node.template, path: problem.path, message: problem.message, trait: problem.variable.slice('traits.'.length) });
        continue;
      }
      problems.push({ node: node.id, field: `nodes.${i}.template`, message: `Template "${node.template}" ${problem.path}: ${problem.message}` });
    }
  }
  if (unknown.length > 0) {
    // The catalogue does not list traits written only by imports, models or the profiles API: ask the profiles themselves.
    const present = new Set(await knownTraits(db, workspaceId, [...new Set(unknown.map((u) => u.trait))]));
    for (const u of unknown) {
      if (present.has(u.trait)) continue;
      warnings.push({ node: u.nodeId, field: `nodes.${u.i}.template`, templateField: u.path, name: `traits.${u.trait}`, message: `Template "${u.template}" ${u.path}: ${u.message}` });
    }
  }
  return { problems, warnings };
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
  /** Running instances moved onto the new version (migrate: "all"). */
  migrated: number;
  /** Running instances ended because their node is gone from the new version (migrate: "all" with exitUnmapped). */
  exited: number;
  /** Running instances left on the version they started on (migrate: "none", the default). */
  stayed: number;
  /** What publishing did not refuse but the operator should know (unknown traits in templates). */
  warnings: Problem[];
}

/**
 * What a publish (or a later migrate) does with the instances already running:
 * - `none` (the default): each stays on the version it started on, to the end of its walk;
 * - `all`: every running instance of earlier versions moves to the new version, at the node with
 *   the same id or the one `mapping` names (it must be of the same kind). An instance whose node
 *   has no counterpart refuses the whole operation (409 `unmapped_instances`, listing the nodes)
 *   unless `exitUnmapped` says to end those instances (`exited`, detail naming the node).
 */
export interface MigrationOptions {
  migrate?: 'none' | 'all';
  mapping?: Readonly<Record<string, string>>;
  exitUnmapped?: boolean;
}

function checkMigrationOptions(options: MigrationOptions): void {
  if (options.migrate !== 'all' && (options.mapping !== undefined || options.exitUnmapped !== undefined)) {
    throw new ApiError(
      400,
      'invalid_request',
      'mapping and exitUnmapped apply only when running instances migrate (migrate: "all"); without migration they stay on their version',
      options.mapping !== undefined ? 'mapping' : 'exitUnmapped',
    );
  }
}

/**
 * Freezes the draft as the next version and makes it live: new entries take it. Running instances
 * of earlier versions stay on their own version (the executor walks each instance against its
 * version's graph) unless the operator migrates them (`options.migrate: "all"`, see
 * MigrationOptions). Template warnings (unknown traits) are returned, not refused.
 */
export async function publishJourney(
  db: Db,
  workspaceId: string,
  key: string,
  now: Date,
  checks: JourneyChecks = {},
  options: MigrationOptions = {},
): Promise<PublishResult> {
  checkMigrationOptions(options);
  const draft = await getJourney(db, workspaceId, key);
  if (draft.status === 'archived') throw new ApiError(409, 'journey_archived', `Journey "${key}" is archived and cannot be published`);
  const checked = await journeyCheck(db, workspaceId, draft.draft, checks);
  refuseProblems(checked.problems);
  checkMappingTargets(draft.draft, options.mapping ?? {});
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
    const moved =
      options.migrate === 'all'
        ? await migrateInstances(client, workspaceId, journey.id, version, now, options)
        : { migrated: 0, exited: 0 };
    const stayed = await runningOnOtherVersions(client, workspaceId, journey.id, version);
    return { journey: toRecord(rows[0]!), version, ...moved, stayed, warnings: checked.warnings };
  });
}

function checkMappingTargets(definition: JourneyDefinition, mapping: Readonly<Record<string, string>>): void {
  for (const [from, to] of Object.entries(mapping)) {
    if (!nodeById(definition, to)) throw new ApiError(400, 'invalid_mapping', `Mapping "${from}" → "${to}": the new version has no node "${to}"`, `mapping.${from}`);
  }
}

async function runningOnOtherVersions(client: DbClient, workspaceId: string, journeyId: string, version: number): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `select count(*)::int as n from journey_instances where workspace_id = $1 and journey_id = $2 and status = 'active' and version <> $3`,
    [workspaceId, journeyId, version],
  );
  return rows[0]!.n;
}

export interface MigrateResult {
  version: number;
  migrated: number;
  exited: number;
  /** Running instances still on other versions afterwards (those of versions not asked for). */
  stayed: number;
}

/**
 * The operator's later choice: moves running instances of earlier versions (all, or `fromVersion`
 * only) onto the live version, as `publish` with `migrate: "all"` would have.
 */
export async function migrateJourney(
  db: Db,
  workspaceId: string,
  key: string,
  now: Date,
  options: { fromVersion?: number; mapping?: Readonly<Record<string, string>>; exitUnmapped?: boolean } = {},
): Promise<MigrateResult> {
  await prepareTransitionStorage(db, now);
  return withTransaction(db, async (client) => {
    const journey = await getJourney(client, workspaceId, key, true);
    if (journey.status !== 'published' && journey.status !== 'paused') {
      throw new ApiError(409, 'invalid_state', `Journey "${key}" is ${journey.status}; only a live journey's instances can migrate`, 'status');
    }
    const version = journey.currentVersion!;
    if (options.fromVersion !== undefined && (options.fromVersion < 1 || options.fromVersion >= version)) {
      throw new ApiError(400, 'invalid_request', `fromVersion must be an earlier version than the live one (1–${version - 1})`, 'fromVersion');
    }
    const target = await loadVersion(client, workspaceId, journey.id, version);
    checkMappingTargets(target.definition, options.mapping ?? {});
    const moved = await migrateInstances(client, workspaceId, journey.id, version, now, options);
    return { version, ...moved, stayed: await runningOnOtherVersions(client, workspaceId, journey.id, version) };
  });
}

interface Unmapped {
  version: number;
  node: string;
  kind: string;
  instances: number;
  reason: string;
}

async function migrateInstances(
  client: DbClient,
  workspaceId: string,
  journeyId: string,
  version: number,
  now: Date,
  options: { fromVersion?: number; mapping?: Readonly<Record<string, string>>; exitUnmapped?: boolean },
): Promise<{ migrated: number; exited: number }> {
  const mapping = options.mapping ?? {};
  const target = await loadVersion(client, workspaceId, journeyId, version);
  const { rows } = await client.query<InstanceRow>(
    `select ${INSTANCE_COLUMNS} from journey_instances i
      where i.workspace_id = $1 and i.journey_id = $2 and i.status = 'active' and i.version <> $3 and ($4::int is null or i.version = $4)
      order by i.id for update`,
    [workspaceId, journeyId, version, options.fromVersion ?? null],
  );
  // Plan first: where each instance goes, or why it cannot.
  const plans: Array<{ instance: InstanceRow; from: JourneyVersion; to?: string; why?: string }> = [];
  const unmapped = new Map<string, Unmapped>();
  for (const instance of rows) {
    const from = await loadVersion(client, workspaceId, journeyId, instance.version);
    const before = nodeById(from.definition, instance.node_id);
    // The operator's mapping moves an instance from a node to another of the same kind; other nodes map by id.
    const mapped = mapping[instance.node_id] ?? instance.node_id;
    const after = nodeById(target.definition, mapped);
    if (after && before && after.kind === before.kind) {
      plans.push({ instance, from, to: mapped });
      continue;
    }
    const why = after ? `node "${mapped}" is a ${after.kind} in version ${version}` : `node "${mapped}" was removed in version ${version}`;
    plans.push({ instance, from, why });
    const key = `${instance.version}:${instance.node_id}`;
    const entry = unmapped.get(key) ?? { version: instance.version, node: instance.node_id, kind: before?.kind ?? 'unknown', instances: 0, reason: why };
    entry.instances++;
    unmapped.set(key, entry);
  }
  if (unmapped.size > 0 && !options.exitUnmapped) {
    const list = [...unmapped.values()];
    const first = list[0]!;
    throw new ApiError(
      409,
      'unmapped_instances',
      `${list.reduce((sum, u) => sum + u.instances, 0)} running instance(s) are at nodes with no counterpart in version ${version} ` +
        `(${list.map((u) => `v${u.version} "${u.node}": ${u.instances}, ${u.reason}`).join('; ')}); ` +
        'map each node to one of the same kind (mapping) or end those instances (exitUnmapped: true)',
      `mapping.${first.node}`,
      {},
      { unmapped: list },
    );
  }
  const events: SystemEvent[] = [];
  let migrated = 0;
  for (const plan of plans) {
    if (plan.to !== undefined) {
      plan.instance.version = version;
      plan.instance.node_id = plan.to;
      migrated++;
    } else {
      finishInstance(plan.instance, plan.from, 'exited', plan.why!, now, events);
    }
    await saveInstance(client, plan.instance);
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
