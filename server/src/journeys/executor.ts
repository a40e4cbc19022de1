import type { EnqueuedMessage, EnqueueMessage, MessageRequest } from '../channels/contract.ts';
import { emptyReads, loadProfileSnapshots, snapshotNeeds } from '../segments/snapshots.ts';
import type { ProfileSnapshot } from '../segments/snapshot.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { withTransaction, type Db, type DbClient } from '../storage/database.ts';
import { entryNode } from './definition.ts';
import { INSTANCE_COLUMNS, journeyIds, loadVersion, type EntryKind, type InstanceRow, type JourneyVersion } from './instances.ts';
import { inHoldout, reentryAllows } from './rules.ts';
import { writeTraitUpdates } from './trait-updates.ts';
import { mergeReads, NEEDS_SNAPSHOT, StepError, versionReads, walkInstance, type WalkResult } from './walk.ts';

/*
 * The durable executor. An instance is a row; its timer is `due_at` under a partial index, so a
 * million waiting instances cost a million index entries and no work. A batch, in one
 * transaction:
 *   1. claims due rows in due order with FOR UPDATE SKIP LOCKED (concurrent workers never take
 *      the same instance; a paused journey's instances are not taken);
 *   2. walks each instance in memory through every node it can pass now (walk.ts over the pure
 *      node kinds of steps.ts), loading profile snapshots only for instances that reach a node
 *      that reads the profile, all of them in one go;
 *   3. writes the whole batch set-based: one enqueue of every message (channels' enqueueMessages,
 *      3 statements per workspace), one statement for the waiting steps settled, the new steps and
 *      the instance rows, one insert of the Journey events per workspace.
 * A crash before the commit undoes all of it and the instances are taken again as they were;
 * after the commit nothing is redone. Each send's idempotency key is (instance, node, visit), so
 * even a step run twice by mistake would enqueue one message. When the batch write fails (one
 * instance's enqueue refused, say), it is undone and the instances are written one by one, each
 * under a savepoint: one bad instance is rescheduled with backoff and the rest go on.
 */

/** channels' batch enqueue (`enqueueMessages`): results in request order, in the caller's transaction. */
export type EnqueueMessages = (client: DbClient, requests: readonly MessageRequest[], now: Date) => Promise<EnqueuedMessage[]>;

/** A one-at-a-time enqueue as a batch one (tests, and workers configured with a single enqueue). */
export function oneByOne(enqueue: EnqueueMessage): EnqueueMessages {
  return async (client, requests, now) => {
    const results: EnqueuedMessage[] = [];
    for (const request of requests) results.push(await enqueue(client, request, now));
    return results;
  };
}

export interface ExecutorDeps {
  db: Db;
  /** channels/: queues a batch's messages inside the batch's transaction. */
  enqueue: EnqueueMessages;
  now: () => Date;
}

export interface StepOutcome {
  /** Instances taken and advanced (or failed and rescheduled). */
  taken: number;
  failed: Array<{ instanceId: string; error: string }>;
}

export const DEFAULT_BATCH = 500;

// An instance whose step throws is retried after this long, doubling up to an hour.
const RETRY_BASE_MS = 10_000;

interface Failure {
  instance: InstanceRow;
  nodeId: string;
  error: string;
}

/** Advances up to `limit` due instances of published journeys in one transaction. */
export async function advanceDueInstances(deps: ExecutorDeps, limit = DEFAULT_BATCH): Promise<StepOutcome> {
  const now = deps.now();
  await prepareTransitionStorage(deps.db, now);
  return withTransaction(deps.db, async (client) => {
    const { rows } = await client.query<InstanceRow>(
      `select ${INSTANCE_COLUMNS} from journey_instances i
         join journeys j on j.workspace_id = i.workspace_id and j.id = i.journey_id
        where i.status = 'active' and i.due_at <= $1 and j.status = 'published'
        order by i.due_at
        limit $2
        for update of i skip locked`,
      [now, limit],
    );
    if (rows.length === 0) return { taken: 0, failed: [] };
    const failures: Failure[] = [];
    const walks = await walkBatch(client, await stillPublished(client, rows), now, failures);
    await client.query('savepoint batch');
    try {
      await writeWalks(client, deps, walks, now);
      await client.query('release savepoint batch');
    } catch {
      // Something in the batch was refused: write instance by instance so only the culprit waits.
      await client.query('rollback to savepoint batch');
      for (const walk of walks) {
        await client.query('savepoint one');
        try {
          await writeWalks(client, deps, [walk], now);
          await client.query('release savepoint one');
        } catch (error) {
          await client.query('rollback to savepoint one');
          const row = rows.find((r) => r.id === walk.instance.id && r.workspace_id === walk.instance.workspace_id)!;
          failures.push({ instance: row, nodeId: walk.messages[0]?.step.nodeId ?? walk.instance.node_id, error: errorText(error) });
        }
      }
    }
    for (const failure of failures) await recordFailure(client, failure, now);
    return { taken: rows.length, failed: failures.map((f) => ({ instanceId: f.instance.id, error: f.error })) };
  });
}

/**
 * Key-share-locks the claimed instances' journeys and keeps the instances of those still
 * published. Pausing (and publishing, archiving) locks the journey row FOR UPDATE (store.ts): it
 * waits for this batch to commit and then holds what the batch queued; or it holds the row first
 * and this batch skips the journey's instances (SKIP LOCKED: never waits, so never deadlocks with
 * a publish that locks instances after the journey), which stay due for a later batch.
 */
async function stillPublished(client: DbClient, rows: InstanceRow[]): Promise<InstanceRow[]> {
  const journeys = [...new Set(rows.map((row) => `${row.workspace_id}:${row.journey_id}`))];
  const { rows: live } = await client.query<{ workspace_id: string; id: string }>(
    `select j.workspace_id, j.id from journeys j
       join unnest($1::uuid[], $2::uuid[]) as x(w, id) on j.workspace_id = x.w and j.id = x.id
      where j.status = 'published' for key share of j skip locked`,
    [journeys.map((j) => j.split(':')[0]), journeys.map((j) => j.split(':')[1])],
  );
  const published = new Set(live.map((row) => `${row.workspace_id}:${row.id}`));
  return rows.filter((row) => published.has(`${row.workspace_id}:${row.journey_id}`));
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Walks every claimed instance in memory; instances that reach a node reading the profile are walked again with its snapshot. */
async function walkBatch(client: DbClient, rows: readonly InstanceRow[], now: Date, failures: Failure[]): Promise<WalkResult[]> {
  const versions = new Map<InstanceRow, JourneyVersion>();
  for (const row of rows) versions.set(row, await loadVersion(client, row.workspace_id, row.journey_id, row.version));
  const zones = await workspaceTimeZones(client, [...new Set(rows.map((row) => row.workspace_id))]);
  const walks: WalkResult[] = [];
  const needing: InstanceRow[] = [];
  const walkOne = (row: InstanceRow, snapshot: ProfileSnapshot | undefined) => {
    try {
      const walked = walkInstance(row, versions.get(row)!, { now, timeZone: zones.get(row.workspace_id) ?? 'UTC', snapshot });
      if (walked === NEEDS_SNAPSHOT) needing.push(row);
      else walks.push(walked);
    } catch (error) {
      failures.push({ instance: row, nodeId: error instanceof StepError ? error.nodeId : row.node_id, error: errorText(error) });
    }
  };
  for (const row of rows) walkOne(row, undefined);
  if (needing.length > 0) {
    const snapshots = await loadSnapshots(client, needing, versions, now);
    const again = needing.splice(0);
    for (const row of again) walkOne(row, snapshots.get(`${row.workspace_id}:${row.profile_id}`) ?? emptySnapshot(row.profile_id));
  }
  return walks;
}

/** The instances' profiles, per workspace in the queries of one `loadProfileSnapshots`, with what any node of their versions reads. */
async function loadSnapshots(client: DbClient, rows: readonly InstanceRow[], versions: Map<InstanceRow, JourneyVersion>, now: Date): Promise<Map<string, ProfileSnapshot>> {
  const byWorkspace = new Map<string, InstanceRow[]>();
  for (const row of rows) byWorkspace.set(row.workspace_id, [...(byWorkspace.get(row.workspace_id) ?? []), row]);
  const snapshots = new Map<string, ProfileSnapshot>();
  for (const [workspaceId, list] of byWorkspace) {
    const reads = emptyReads();
    for (const version of new Set(list.map((row) => versions.get(row)!))) mergeReads(reads, versionReads(version));
    const needs = snapshotNeeds(reads, now.getTime());
    if (reads.segments.size > 0) {
      const { rows: segments } = await client.query<{ id: string; key: string }>(
        `select id, key from segments where workspace_id = $1 and key = any($2::text[]) and status <> 'archived'`,
        [workspaceId, [...reads.segments]],
      );
      needs.memberships = new Map(segments.map((row) => [row.id, row.key]));
    }
    for (const snapshot of await loadProfileSnapshots(client, workspaceId, [...new Set(list.map((row) => row.profile_id))], needs)) {
      snapshots.set(`${workspaceId}:${snapshot.profileId}`, snapshot);
    }
  }
  return snapshots;
}

// A profile merged away since it entered has no snapshot of its own: it answers as an empty profile.
const emptySnapshot = (profileId: string): ProfileSnapshot => ({
  profileId,
  traits: {},
  identifierTypes: new Set(),
  consents: new Map(),
  memberships: new Set(),
  events: [],
});

/**
 * Writes walked instances: their messages (one enqueue for all), trait updates, then one
 * statement for the settled waiting steps, the new steps and the instance rows, and the
 * Journey events (one insert per workspace).
 */
async function writeWalks(client: DbClient, deps: ExecutorDeps, walks: readonly WalkResult[], now: Date): Promise<void> {
  const messages = walks.flatMap((walk) => walk.messages);
  if (messages.length > 0) {
    const results = await deps.enqueue(
      client,
      messages.map((m) => m.request),
      now,
    );
    messages.forEach(({ step, request }, i) => {
      const result = results[i];
      if (!result) throw new Error(`The enqueue answered ${results.length} results for ${messages.length} messages`);
      step.outcome = result.status;
      step.detail = { ...step.detail, messageId: result.messageId, idempotencyKey: request.idempotencyKey, ...(result.reason ? { reason: result.reason } : {}) };
    });
  }
  const traitUpdates = walks.flatMap((walk) =>
    walk.traits
      ? [
          {
            workspaceId: walk.instance.workspace_id,
            journeyId: walk.instance.journey_id,
            instanceId: walk.instance.id,
            profileId: walk.instance.profile_id,
            traits: walk.traits,
            listAdditions: walk.listAdditions ?? {},
          },
        ]
      : [],
  );
  if (traitUpdates.length > 0) await writeTraitUpdates(client, traitUpdates, now);

  const settled = walks.flatMap((walk) =>
    walk.settle
      ? [{ workspace_id: walk.instance.workspace_id, instance_id: walk.instance.id, step: walk.settle.step, outcome: walk.settle.outcome, detail: walk.settle.detail ?? null }]
      : [],
  );
  const steps = walks.flatMap((walk) =>
    walk.steps.map((step) => ({
      workspace_id: walk.instance.workspace_id,
      instance_id: walk.instance.id,
      step: step.step,
      journey_id: walk.instance.journey_id,
      version: walk.instance.version,
      node_id: step.nodeId,
      kind: step.kind,
      outcome: step.outcome,
      detail: step.detail ?? null,
    })),
  );
  const instances = walks.map(({ instance }) => ({
    workspace_id: instance.workspace_id,
    id: instance.id,
    status: instance.status,
    node_id: instance.node_id,
    phase: instance.phase,
    due_at: instance.due_at,
    wait_started_at: instance.wait_started_at,
    visits: instance.visits,
    step_count: instance.step_count,
    ended_at: instance.ended_at,
    end_reason: instance.end_reason,
    end_detail: instance.end_detail,
  }));
  await client.query(
    `with settled as (
       update journey_steps s set outcome = x.outcome, detail = case when x.detail is null then s.detail else coalesce(s.detail, '{}'::jsonb) || x.detail end
         from jsonb_to_recordset($1::jsonb) as x(workspace_id uuid, instance_id uuid, step int, outcome text, detail jsonb)
        where s.workspace_id = x.workspace_id and s.instance_id = x.instance_id and s.step = x.step),
     steps as (
       insert into journey_steps (workspace_id, instance_id, step, journey_id, version, node_id, kind, at, outcome, detail)
       select workspace_id, instance_id, step, journey_id, version, node_id, kind, $4, outcome, detail
         from jsonb_to_recordset($2::jsonb) as x(workspace_id uuid, instance_id uuid, step int, journey_id uuid, version int, node_id text, kind text,
                                                  outcome text, detail jsonb))
     update journey_instances i
        set status = x.status, node_id = x.node_id, phase = x.phase, due_at = x.due_at, wait_started_at = x.wait_started_at, visits = x.visits,
            step_count = x.step_count, ended_at = x.ended_at, end_reason = x.end_reason, end_detail = x.end_detail
       from jsonb_to_recordset($3::jsonb) as x(workspace_id uuid, id uuid, status text, node_id text, phase text, due_at timestamptz,
                                               wait_started_at timestamptz, visits jsonb, step_count int, ended_at timestamptz, end_reason text,
                                               end_detail text)
      where i.workspace_id = x.workspace_id and i.id = x.id`,
    [JSON.stringify(settled), JSON.stringify(steps), JSON.stringify(instances), now],
  );
  const eventsByWorkspace = new Map<string, SystemEvent[]>();
  for (const walk of walks) {
    if (walk.events.length === 0) continue;
    const list = eventsByWorkspace.get(walk.instance.workspace_id) ?? [];
    list.push(...walk.events);
    eventsByWorkspace.set(walk.instance.workspace_id, list);
  }
  for (const [workspaceId, events] of eventsByWorkspace) await insertSystemEvents(client, workspaceId, events, now);
}

/**
 * Records a failed step beside the step history (the per-instance view shows why it is stuck) and
 * reschedules the instance, as it was when claimed, with backoff.
 */
async function recordFailure(client: DbClient, failure: Failure, now: Date): Promise<void> {
  const { instance, nodeId, error } = failure;
  const { rows } = await client.query<{ failures: number }>(
    `select count(*)::int as failures from journey_steps where workspace_id = $1 and instance_id = $2 and kind = 'error'`,
    [instance.workspace_id, instance.id],
  );
  const attempt = Math.min(rows[0]!.failures, 9);
  const { rows: updated } = await client.query<{ step_count: number }>(
    `update journey_instances set step_count = step_count + 1, due_at = $3 where workspace_id = $1 and id = $2 returning step_count`,
    [instance.workspace_id, instance.id, new Date(now.getTime() + Math.min(RETRY_BASE_MS * 2 ** attempt, 3_600_000))],
  );
  await client.query(
    `insert into journey_steps (workspace_id, instance_id, step, journey_id, version, node_id, kind, at, outcome, detail)
     values ($1, $2, $3, $4, $5, $6, 'error', $7, 'failed', jsonb_build_object('error', $8::text))`,
    [instance.workspace_id, instance.id, updated[0]!.step_count, instance.journey_id, instance.version, nodeId, now, error],
  );
}

// Workspace time zones change rarely; a process keeps them once read.
const zoneCache = new Map<string, string>();
async function workspaceTimeZones(client: DbClient, workspaceIds: readonly string[]): Promise<Map<string, string>> {
  const missing = workspaceIds.filter((id) => !zoneCache.has(id));
  if (missing.length > 0) {
    const { rows } = await client.query<{ id: string; time_zone: string | null }>('select id, time_zone from workspaces where id = any($1::uuid[])', [missing]);
    if (zoneCache.size > 10_000) zoneCache.clear();
    for (const row of rows) zoneCache.set(row.id, row.time_zone ?? 'UTC');
  }
  return new Map(workspaceIds.map((id) => [id, zoneCache.get(id) ?? 'UTC']));
}

export interface EntryRequest {
  profileId: string;
  entry: EntryKind;
  variables?: Record<string, unknown>;
  /** Per-key instances: the key's value (e.g. an order id); one instance per (profile, key). */
  key?: string;
}

export interface EntryResult {
  profileId: string;
  instanceId?: string;
  /** Why the profile did not enter. */
  refused?: 'not_live' | 'already_in' | 'reentry' | 'cap' | 'max_concurrent';
}

/**
 * Enters profiles into the journey's current version, inside the caller's transaction, set-based
 * (a fixed number of statements for any number of requests): re-entry rules, the entry cap, one
 * live instance per profile — or, with per-key instances (an event trigger's instanceKey), one per
 * (profile, key) with at most `maxConcurrent` running per profile, re-entry counted per key — (a
 * unique index decides races), the holdout group, and a Journey Entered event each. The
 * instances are due at once; the executor takes them from the entry node. The month partition
 * for `now` must exist.
 */
export async function enterProfiles(client: DbClient, workspaceId: string, journeyId: string, requests: readonly EntryRequest[], now: Date): Promise<EntryResult[]> {
  if (requests.length === 0) return [];
  const { rows: journeys } = await client.query<{ status: string; current_version: number | null }>(
    'select status, current_version from journeys where workspace_id = $1 and id = $2',
    [workspaceId, journeyId],
  );
  const journey = journeys[0];
  if (!journey || journey.status !== 'published' || journey.current_version === null) {
    return requests.map((request) => ({ profileId: request.profileId, refused: 'not_live' }));
  }
  const version = await loadVersion(client, workspaceId, journeyId, journey.current_version);
  const entry = entryNode(version.definition);
  const perKey = entry.trigger.kind === 'event' && entry.trigger.instanceKey !== undefined;
  const maxConcurrent = perKey ? (entry.maxConcurrent ?? Number.POSITIVE_INFINITY) : 1;
  const keyOf = (request: EntryRequest) => (perKey ? (request.key ?? '') : '');
  const profileIds = [...new Set(requests.map((r) => r.profileId))];
  // The last entry per (profile, key); with per-key instances, how many each profile runs now.
  const { rows: previous } = await client.query<{ profile_id: string; instance_key: string; entered_at: Date; active: boolean }>(
    `select distinct on (profile_id, instance_key) profile_id, instance_key, entered_at, status = 'active' as active
       from journey_instances
      where workspace_id = $1 and journey_id = $2 and profile_id = any($3::uuid[]) and instance_key = any($4::text[])
      order by profile_id, instance_key, (status = 'active') desc, entered_at desc`,
    [workspaceId, journeyId, profileIds, [...new Set(requests.map(keyOf))]],
  );
  const running = new Map<string, number>();
  if (perKey && Number.isFinite(maxConcurrent)) {
    const { rows } = await client.query<{ profile_id: string; n: number }>(
      `select profile_id, count(*)::int as n from journey_instances
        where workspace_id = $1 and journey_id = $2 and profile_id = any($3::uuid[]) and status = 'active' group by profile_id`,
      [workspaceId, journeyId, profileIds],
    );
    for (const row of rows) running.set(row.profile_id, row.n);
  }
  const slot = (profileId: string, key: string) => `${profileId}\u0000${key}`;
  const last = new Map(previous.map((row) => [slot(row.profile_id, row.instance_key), row]));
  const results: EntryResult[] = requests.map((request) => ({ profileId: request.profileId }));
  const candidates: number[] = [];
  const taken = new Set<string>();
  requests.forEach((request, i) => {
    const key = keyOf(request);
    const before = last.get(slot(request.profileId, key));
    if (before?.active || taken.has(slot(request.profileId, key))) results[i]!.refused = 'already_in';
    else if (perKey && (running.get(request.profileId) ?? 0) >= maxConcurrent) results[i]!.refused = 'max_concurrent';
    else if (!reentryAllows(entry.reentry, before?.entered_at ?? null, now)) results[i]!.refused = 'reentry';
    else {
      taken.add(slot(request.profileId, key));
      if (perKey) running.set(request.profileId, (running.get(request.profileId) ?? 0) + 1);
      candidates.push(i);
    }
  });
  if (candidates.length === 0) return results;
  let admitted = candidates;
  if (entry.cap !== undefined) {
    // The journey row's lock serialises capped entries of one journey; uncapped ones only add up.
    // NO KEY UPDATE: the executor's KEY SHARE lock on the row (stillPublished) does not wait for it.
    const { rows } = await client.query<{ entered_count: string }>('select entered_count from journeys where workspace_id = $1 and id = $2 for no key update', [
      workspaceId,
      journeyId,
    ]);
    const room = Math.max(0, entry.cap - Number(rows[0]!.entered_count));
    admitted = candidates.slice(0, room);
    for (const i of candidates.slice(room)) results[i]!.refused = 'cap';
  }
  if (admitted.length === 0) return results;
  const holdouts = admitted.map((i) => inHoldout(journeyId, requests[i]!.profileId, entry.holdoutPercent));
  const { rows: inserted } = await client.query<{ id: string; profile_id: string; instance_key: string }>(
    `insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, due_at, holdout, entry, entered_at, variables, instance_key)
     select $1, $2, $3, p, 'active', $4, 'arrive', $5, h, e, $5, v, k
       from unnest($6::uuid[], $7::boolean[], $8::text[], $9::jsonb[], $10::text[]) as x(p, h, e, v, k)
     on conflict (workspace_id, journey_id, profile_id, instance_key) where status = 'active' do nothing
     returning id, profile_id, instance_key`,
    [
      workspaceId,
      journeyId,
      version.version,
      entry.id,
      now,
      admitted.map((i) => requests[i]!.profileId),
      holdouts,
      admitted.map((i) => requests[i]!.entry),
      admitted.map((i) => JSON.stringify(requests[i]!.variables ?? {})),
      admitted.map((i) => keyOf(requests[i]!)),
    ],
  );
  if (inserted.length > 0) {
    await client.query('update journeys set entered_count = entered_count + $3 where workspace_id = $1 and id = $2', [workspaceId, journeyId, inserted.length]);
  }
  const ids = new Map(inserted.map((row) => [slot(row.profile_id, row.instance_key), row.id]));
  const events: SystemEvent[] = [];
  admitted.forEach((i, k) => {
    const request = requests[i]!;
    const key = keyOf(request);
    const id = ids.get(slot(request.profileId, key));
    // Not inserted: entered a moment ago by a concurrent transaction.
    if (!id) {
      results[i]!.refused = 'already_in';
      return;
    }
    results[i]!.instanceId = id;
    events.push({
      messageId: `journey-entered-${id}`,
      event: 'Journey Entered',
      profileId: request.profileId,
      properties: { ...journeyIds(version, id), entry: request.entry, group: holdouts[k] ? 'holdout' : 'treatment', ...(key === '' ? {} : { instance_key: key }) },
    });
  });
  await insertSystemEvents(client, workspaceId, events, now);
  return results;
}
