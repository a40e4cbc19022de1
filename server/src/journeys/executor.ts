import type { EnqueueMessage } from '../channels/contract.ts';
import { durationMs } from '../segments/ast.ts';
import { conditionReads, loadProfileSnapshots, snapshotNeeds } from '../segments/snapshots.ts';
import type { ProfileSnapshot } from '../segments/snapshot.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { withTransaction, type Db, type DbClient } from '../storage/database.ts';
import { entryNode, journeyVariables, nodeById, type JourneyNode } from './definition.ts';
import {
  finishInstance,
  INSTANCE_COLUMNS,
  journeyIds,
  loadVersion,
  recordStep,
  saveInstance,
  settleLastStep,
  type EntryKind,
  type InstanceRow,
  type JourneyVersion,
} from './instances.ts';
import { conditionOf, inHoldout, randomBranch, reentryAllows, splitHolds } from './rules.ts';
import { writeProfileTraits } from '../profiles/trait-writer.ts';
import { delayOutcome, journeyTraitSource, segmentWaitOutcome, TIME_ZONE_TRAITS, traitsRead, traitWriteOf } from './waits.ts';

/*
 * The durable executor. An instance is a row; its timer is `due_at` under a partial index, so a
 * million waiting instances cost a million index entries and no work. A batch takes due rows with
 * FOR UPDATE SKIP LOCKED (concurrent workers never take the same instance), walks each instance
 * through every node it can pass now (until a delay, a wait or the end), and commits the moves,
 * the step history, the message enqueues and the Journey events in one transaction. A crash
 * before the commit undoes all of it, and the instance is taken again as it was; after the
 * commit nothing is redone. Each send's idempotency key is (instance, node, visit), so even a
 * step run twice by mistake would enqueue one message.
 */

export interface ExecutorDeps {
  db: Db;
  /** channels/: queues a message inside the step's transaction. */
  enqueue: EnqueueMessage;
  now: () => Date;
}

// Nodes one instance may pass in one step; validation refuses cycles without a wait, so this only
// trips on a definition that slipped past it.
const MAX_NODES_PER_STEP = 200;

export interface StepOutcome {
  /** Instances taken and advanced (or failed and rescheduled). */
  taken: number;
  failed: Array<{ instanceId: string; error: string }>;
}

// An instance whose step throws is retried after this long, doubling up to an hour.
const RETRY_BASE_MS = 10_000;

/** Advances up to `limit` due instances of published journeys in one transaction. */
export async function advanceDueInstances(deps: ExecutorDeps, limit = 200): Promise<StepOutcome> {
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
    const failed: StepOutcome['failed'] = [];
    const eventsByWorkspace = new Map<string, SystemEvent[]>();
    for (const instance of rows) {
      const events = eventsByWorkspace.get(instance.workspace_id) ?? [];
      eventsByWorkspace.set(instance.workspace_id, events);
      const before = events.length;
      await client.query('savepoint step');
      try {
        await walkInstance(client, deps, instance, now, events);
        await client.query('release savepoint step');
      } catch (error) {
        // One bad instance (a failing enqueue, a definition the evaluator refuses) must not hold up
        // the batch: its step is undone and retried later with backoff.
        await client.query('rollback to savepoint step');
        events.length = before;
        const message = error instanceof Error ? error.message : String(error);
        failed.push({ instanceId: instance.id, error: message });
        await recordFailure(client, instance, message, now);
      }
    }
    for (const [workspaceId, events] of eventsByWorkspace) await insertSystemEvents(client, workspaceId, events, now);
    return { taken: rows.length, failed };
  });
}

/**
 * Records a failed step beside the step history (the per-instance view shows why it is stuck) and
 * reschedules the instance with backoff. The row is read back: the failed walk's in-memory
 * changes were rolled back with its savepoint.
 */
async function recordFailure(client: DbClient, instance: InstanceRow, message: string, now: Date): Promise<void> {
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
    [instance.workspace_id, instance.id, updated[0]!.step_count, instance.journey_id, instance.version, instance.node_id, now, message],
  );
}

/** Runs an instance from where it is until it waits or ends; the caller's transaction holds its row. */
export async function walkInstance(client: DbClient, deps: ExecutorDeps, instance: InstanceRow, now: Date, events: SystemEvent[]): Promise<void> {
  // A share lock on the journey row: pausing (FOR UPDATE, store.ts) waits for this step to commit
  // and then holds what it queued, or commits first and this step sees it and leaves the instance.
  const { rows: live } = await client.query<{ status: string }>('select status from journeys where workspace_id = $1 and id = $2 for share', [
    instance.workspace_id,
    instance.journey_id,
  ]);
  if (live[0]?.status !== 'published') return;
  const version = await loadVersion(client, instance.workspace_id, instance.journey_id, instance.version);
  let snapshot: ProfileSnapshot | undefined;
  for (let passed = 0; passed < MAX_NODES_PER_STEP; passed++) {
    const node = nodeById(version.definition, instance.node_id);
    if (!node) {
      finishInstance(instance, version, 'exited', `node "${instance.node_id}" is not in version ${instance.version}`, now, events);
      break;
    }
    if (instance.phase === 'wait') {
      // A delay ended or a wait timed out.
      const next = node.kind === 'wait' || node.kind === 'segment_wait' ? node.timedOut : node.kind === 'delay' ? node.next : null;
      if (next === null) throw new Error(`Instance waits at ${node.kind} node "${node.id}"`);
      await settleLastStep(client, instance, node.kind === 'delay' ? 'next' : 'timed_out');
      moveTo(instance, next, now);
      continue;
    }
    const visit = (instance.visits[node.id] ?? 0) + 1;
    instance.visits = { ...instance.visits, [node.id]: visit };
    if (node.kind === 'split' && snapshot === undefined) snapshot = await profileSnapshot(client, instance, node, now);
    const result = await arrive(client, deps, version, instance, node, visit, now, events, snapshot);
    await recordStep(client, instance, { nodeId: node.id, kind: node.kind, outcome: result.outcome, ...(result.detail ? { detail: result.detail } : {}) }, now);
    if (result.next === undefined) break;
    moveTo(instance, result.next, now);
  }
  if (instance.status === 'active' && instance.phase === 'arrive') {
    // Passed MAX_NODES_PER_STEP nodes: continue in the next batch rather than hold the transaction.
    instance.due_at = now;
  }
  await saveInstance(client, instance);
}

function moveTo(instance: InstanceRow, next: string, now: Date): void {
  instance.node_id = next;
  instance.phase = 'arrive';
  instance.wait_started_at = null;
  instance.due_at = now;
}

interface Arrival {
  outcome: string;
  detail?: Record<string, unknown>;
  /** Where to go now; undefined: the instance waits or has ended. */
  next?: string;
}

async function arrive(
  client: DbClient,
  deps: ExecutorDeps,
  version: JourneyVersion,
  instance: InstanceRow,
  node: JourneyNode,
  visit: number,
  now: Date,
  events: SystemEvent[],
  snapshot: ProfileSnapshot | undefined,
): Promise<Arrival> {
  switch (node.kind) {
    case 'entry':
      return { outcome: 'next', next: node.next };
    case 'delay': {
      const zone = await workspaceTimeZone(client, instance.workspace_id);
      const traits = await profileTraits(client, instance, [...TIME_ZONE_TRAITS, ...traitsRead(node)]);
      const outcome = delayOutcome(node, now, traits, zone);
      if (!outcome.wait) return { outcome: outcome.outcome, detail: outcome.detail, next: node.next };
      instance.phase = 'wait';
      instance.wait_started_at = now;
      instance.due_at = outcome.until;
      return { outcome: 'waiting', detail: { until: outcome.until.toISOString(), timeZone: outcome.timeZone } };
    }
    case 'wait':
      instance.phase = 'wait';
      instance.wait_started_at = now;
      instance.due_at = new Date(now.getTime() + durationMs(node.timeout));
      return { outcome: 'waiting', detail: { event: node.event, timeoutAt: instance.due_at.toISOString() } };
    case 'segment_wait': {
      const { rows } = await client.query<{ member: boolean }>(
        `select exists (select 1 from segment_memberships m join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
                         where m.workspace_id = $1 and m.profile_id = $2 and s.key = $3 and s.status <> 'archived') as member`,
        [instance.workspace_id, instance.profile_id, node.segment],
      );
      const outcome = segmentWaitOutcome(node, rows[0]!.member, now);
      if (outcome.happened) return { outcome: 'happened', detail: { segment: node.segment, on: node.on, already: true }, next: node.happened };
      instance.phase = 'wait';
      instance.wait_started_at = now;
      instance.due_at = outcome.timeoutAt;
      return { outcome: 'waiting', detail: { segment: node.segment, on: node.on, timeoutAt: outcome.timeoutAt.toISOString() } };
    }
    case 'update_trait': {
      const changes = await writeProfileTraits(client, instance.workspace_id, [traitWriteOf(node, instance.profile_id)], journeyTraitSource(instance.journey_id), {
        messageId: `journey:${instance.id}:${node.id}:${visit}`,
        at: now,
      });
      return { outcome: changes.length > 0 ? 'updated' : 'unchanged', detail: { traits: changes.map((c) => c.key) }, next: node.next };
    }
    case 'split': {
      const holds = splitHolds(node, snapshot!, now.getTime());
      return { outcome: holds ? 'yes' : 'no', next: holds ? node.yes : node.no };
    }
    case 'random': {
      const branch = randomBranch(node, instance.journey_id, instance.profile_id);
      events.push({
        messageId: `journey-split-${instance.id}-${node.id}-${visit}`,
        event: 'Journey Split Assigned',
        profileId: instance.profile_id,
        properties: { ...journeyIds(version, instance.id), node_id: node.id, variant: branch.key },
      });
      return { outcome: branch.key, next: branch.next };
    }
    case 'send':
    case 'webhook': {
      if (instance.holdout) return { outcome: 'held_out', next: node.next };
      const idempotencyKey = `journey:${instance.id}:${node.id}:${visit}`;
      const rate = entryNode(version.definition).ratePerSecond;
      const message = await deps.enqueue(
        client,
        {
          workspaceId: instance.workspace_id,
          profileId: instance.profile_id,
          ...(node.kind === 'send'
            ? {
                channel: node.channel,
                purpose: node.purpose,
                ...(node.channelConfigKey ? { channelConfigKey: node.channelConfigKey } : {}),
                ...(node.subscriptionGroup ? { subscriptionGroup: node.subscriptionGroup } : {}),
              }
            : // A webhook call is an integration, not marketing: no consent, caps or quiet hours.
              { channel: 'webhook' as const, purpose: 'transactional' as const, channelConfigKey: node.channelConfigKey }),
          templateKey: node.template,
          idempotencyKey,
          variables: { event: instance.variables, journey: journeyVariables(version.definition, version.journeyKey, version.version) },
          origin: { journeyId: instance.journey_id, journeyVersion: instance.version, instanceId: instance.id, nodeId: node.id },
          ...(rate ? { ratePerSecond: rate } : {}),
        },
        now,
      );
      return {
        outcome: message.status,
        detail: { messageId: message.messageId, idempotencyKey, ...(message.reason ? { reason: message.reason } : {}) },
        next: node.next,
      };
    }
    case 'end':
      finishInstance(instance, version, 'completed', null, now, events);
      return { outcome: 'completed' };
  }
}

const zoneCache = new Map<string, string>();
async function workspaceTimeZone(client: DbClient, workspaceId: string): Promise<string> {
  let zone = zoneCache.get(workspaceId);
  if (!zone) {
    const { rows } = await client.query<{ time_zone: string }>('select time_zone from workspaces where id = $1', [workspaceId]);
    zone = rows[0]?.time_zone ?? 'UTC';
    zoneCache.set(workspaceId, zone);
  }
  return zone;
}

/** Some traits of the instance's profile, as they are now. */
async function profileTraits(client: DbClient, instance: InstanceRow, keys: readonly string[]): Promise<Record<string, unknown>> {
  const { rows } = await client.query<{ key: string; value: unknown }>(
    'select key, value from profile_traits where workspace_id = $1 and profile_id = $2 and key = any($3::text[])',
    [instance.workspace_id, instance.profile_id, keys],
  );
  return Object.fromEntries(rows.map((row) => [row.key, row.value]));
}

/** What a split condition reads of the instance's profile, loaded now. */
async function profileSnapshot(client: DbClient, instance: InstanceRow, node: JourneyNode & { kind: 'split' }, now: Date): Promise<ProfileSnapshot> {
  const reads = conditionReads(conditionOf(node.condition));
  const needs = snapshotNeeds(reads, now.getTime());
  if (reads.segments.size > 0) {
    const { rows } = await client.query<{ id: string; key: string }>(
      `select id, key from segments where workspace_id = $1 and key = any($2::text[]) and status <> 'archived'`,
      [instance.workspace_id, [...reads.segments]],
    );
    needs.memberships = new Map(rows.map((row) => [row.id, row.key]));
  }
  const [snapshot] = await loadProfileSnapshots(client, instance.workspace_id, [instance.profile_id], needs);
  // A profile merged away since it entered has no snapshot of its own: it answers as an empty profile.
  return (
    snapshot ?? { profileId: instance.profile_id, traits: {}, identifierTypes: new Set(), consents: new Map(), memberships: new Set(), events: [] }
  );
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
 * Enters profiles into the journey's current version, inside the caller's transaction: re-entry
 * rules, the entry cap, one live instance per profile — or, for per-key instances, per (profile,
 * key) with at most `maxConcurrent` running per profile — (a unique index decides races), the
 * holdout group, and a Journey Entered event each. The instances are due at once; the executor
 * takes them from the entry node. The month partition for `now` must exist.
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
  const profileIds = [...new Set(requests.map((r) => r.profileId))];
  // The last entry per (profile, key), and how many instances each profile runs now.
  const { rows: previous } = await client.query<{ profile_id: string; instance_key: string; entered_at: Date; active: boolean }>(
    `select distinct on (profile_id, instance_key) profile_id, instance_key, entered_at, status = 'active' as active
       from journey_instances
      where workspace_id = $1 and journey_id = $2 and profile_id = any($3::uuid[]) and instance_key = any($4::text[])
      order by profile_id, instance_key, (status = 'active') desc, entered_at desc`,
    [workspaceId, journeyId, profileIds, [...new Set(requests.map((r) => r.key ?? ''))]],
  );
  const { rows: running } = await client.query<{ profile_id: string; n: number }>(
    `select profile_id, count(*)::int as n from journey_instances
      where workspace_id = $1 and journey_id = $2 and profile_id = any($3::uuid[]) and status = 'active' group by profile_id`,
    [workspaceId, journeyId, profileIds],
  );
  const slot = (profileId: string, key: string) => `${profileId}\u0000${key}`;
  const last = new Map(previous.map((row) => [slot(row.profile_id, row.instance_key), row]));
  const active = new Map(running.map((row) => [row.profile_id, row.n]));
  const results: EntryResult[] = [];
  const events: SystemEvent[] = [];
  for (const request of requests) {
    const key = request.key ?? '';
    const before = last.get(slot(request.profileId, key));
    if (before?.active) {
      results.push({ profileId: request.profileId, refused: 'already_in' });
      continue;
    }
    if ((active.get(request.profileId) ?? 0) >= maxConcurrent) {
      results.push({ profileId: request.profileId, refused: key === '' ? 'already_in' : 'max_concurrent' });
      continue;
    }
    if (!reentryAllows(entry.reentry, before?.entered_at ?? null, now)) {
      results.push({ profileId: request.profileId, refused: 'reentry' });
      continue;
    }
    const { rows: counted } = await client.query(
      `update journeys set entered_count = entered_count + 1
        where workspace_id = $1 and id = $2 and ($3::bigint is null or entered_count < $3) returning entered_count`,
      [workspaceId, journeyId, entry.cap ?? null],
    );
    if (counted.length === 0) {
      results.push({ profileId: request.profileId, refused: 'cap' });
      continue;
    }
    const holdout = inHoldout(journeyId, request.profileId, entry.holdoutPercent);
    const { rows: inserted } = await client.query<{ id: string }>(
      `insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, due_at, holdout, entry, entered_at, variables, instance_key)
       values ($1, $2, $3, $4, 'active', $5, 'arrive', $6, $7, $8, $6, $9, $10)
       on conflict (workspace_id, journey_id, profile_id, instance_key) where status = 'active' do nothing
       returning id`,
      [workspaceId, journeyId, version.version, request.profileId, entry.id, now, holdout, request.entry, JSON.stringify(request.variables ?? {}), key],
    );
    const id = inserted[0]?.id;
    if (!id) {
      // Entered a moment ago by a concurrent transaction; give the cap its place back.
      await client.query('update journeys set entered_count = entered_count - 1 where workspace_id = $1 and id = $2', [workspaceId, journeyId]);
      results.push({ profileId: request.profileId, refused: 'already_in' });
      continue;
    }
    last.set(slot(request.profileId, key), { profile_id: request.profileId, instance_key: key, entered_at: now, active: true });
    active.set(request.profileId, (active.get(request.profileId) ?? 0) + 1);
    events.push({
      messageId: `journey-entered-${id}`,
      event: 'Journey Entered',
      profileId: request.profileId,
      properties: { ...journeyIds(version, id), entry: request.entry, group: holdout ? 'holdout' : 'treatment', ...(key === '' ? {} : { instance_key: key }) },
    });
    results.push({ profileId: request.profileId, instanceId: id });
  }
  await insertSystemEvents(client, workspaceId, events, now);
  return results;
}
