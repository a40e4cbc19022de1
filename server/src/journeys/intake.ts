import { loadProfileSnapshots, snapshotNeeds, emptyReads, type ConditionReads } from '../segments/snapshots.ts';
import type { ProfileEvent, ProfileSnapshot } from '../segments/snapshot.ts';
import { insertSystemEvents, prepareTransitionStorage, type SystemEvent } from '../segments/transitions.ts';
import { withTransaction, type Db, type DbClient, type Queryable } from '../storage/database.ts';
import { settledSequence } from '../storage/settle.ts';
import { entryNode, nodeById, type JourneyDefinition } from './definition.ts';
import { enterProfiles, type EntryRequest } from './executor.ts';
import { finishInstance, INSTANCE_COLUMNS, loadVersion, saveInstance, settleLastStep, type InstanceRow } from './instances.ts';
import { checkRules, eventMatches, rulesReads } from './rules.ts';

/*
 * What moves instances besides time: segment transitions (entries) and events (entries, waits
 * for an event, goals, exits). Each workspace has a cursor per source; a batch reads after it,
 * acts, and moves it in one transaction, so every transition and every event is acted on once.
 *
 * Ids and seqs are taken at insert but become visible at commit, possibly out of order, so a
 * batch reads only up to a settled position: the sequence's value once every transaction that
 * was running when it was read has ended. Events are also read only below the workspace's
 * identity queue, so each has its profile by the time a journey sees it.
 */

const SETTLE_TIMEOUT_MS = 250;

interface LiveJourney {
  workspaceId: string;
  journeyId: string;
  status: 'published' | 'paused';
  definition: JourneyDefinition;
}

async function liveJourneys(db: Queryable): Promise<Map<string, LiveJourney[]>> {
  const { rows } = await db.query<{ workspace_id: string; id: string; status: 'published' | 'paused'; definition: JourneyDefinition }>(
    `select j.workspace_id, j.id, j.status, v.definition from journeys j
       join journey_versions v on v.workspace_id = j.workspace_id and v.journey_id = j.id and v.version = j.current_version
      where j.status in ('published', 'paused')`,
  );
  const byWorkspace = new Map<string, LiveJourney[]>();
  for (const row of rows) {
    const list = byWorkspace.get(row.workspace_id) ?? [];
    list.push({ workspaceId: row.workspace_id, journeyId: row.id, status: row.status, definition: row.definition });
    byWorkspace.set(row.workspace_id, list);
  }
  return byWorkspace;
}

async function lockCursor(client: DbClient, workspaceId: string, source: 'events' | 'transitions'): Promise<number | null> {
  const { rows } = await client.query<{ position: number }>(
    'select position from journey_cursors where workspace_id = $1 and source = $2 for update skip locked',
    [workspaceId, source],
  );
  return rows[0]?.position ?? null;
}

async function moveCursor(client: DbClient, workspaceId: string, source: 'events' | 'transitions', position: number): Promise<void> {
  await client.query('update journey_cursors set position = greatest(position, $3) where workspace_id = $1 and source = $2', [workspaceId, source, position]);
}

export interface IntakeOptions {
  /** Rows per workspace per transaction. */
  batchSize?: number;
  /**
   * How long to wait for transactions that may still commit earlier ids (any database of the
   * server counts); past it the call reads nothing and the loop looks again.
   */
  settleTimeoutMs?: number;
}

/** Enters profiles into published journeys triggered by segment entry or exit; returns transitions read. */
export async function drainSegmentEntries(db: Db, now: Date, options: IntakeOptions = {}): Promise<number> {
  const batchSize = options.batchSize ?? 1000;
  const live = await liveJourneys(db);
  if (live.size === 0) return 0;
  const settled = await settledSequence(db, `pg_get_serial_sequence('segment_transitions', 'id')::regclass`, options.settleTimeoutMs ?? SETTLE_TIMEOUT_MS);
  if (settled === null) return 0;
  await prepareTransitionStorage(db, now);
  let read = 0;
  for (const [workspaceId, journeys] of live) {
    const triggered = journeys.flatMap((journey) => {
      const entry = entryNode(journey.definition);
      return journey.status === 'published' && entry.trigger.kind === 'segment'
        ? [{ journey, segment: entry.trigger.segment, on: entry.trigger.on ?? 'entered' }]
        : [];
    });
    // Segment waits hear transitions in paused journeys too (as event waits hear events), and in
    // every version instances may still walk (they stay on theirs unless migrated).
    const awaited = await awaitedSegments(db, workspaceId, journeys);
    read += await withTransaction(db, async (client) => {
      const position = await lockCursor(client, workspaceId, 'transitions');
      if (position === null || position >= settled) return 0;
      if (triggered.length === 0 && awaited.size === 0) {
        await moveCursor(client, workspaceId, 'transitions', settled);
        return 0;
      }
      const { rows } = await client.query<{ id: number; profile_id: string; transition: 'entered' | 'exited'; key: string }>(
        `select t.id, t.profile_id, t.transition, s.key from segment_transitions t
           join segments s on s.workspace_id = t.workspace_id and s.id = t.segment_id
          where t.workspace_id = $1 and t.id > $2 and t.id <= $3 and s.key = any($4::text[])
          order by t.id limit $5`,
        [workspaceId, position, settled, [...new Set([...triggered.map((t) => t.segment), ...awaited])], batchSize],
      );
      for (const { journey, segment, on } of triggered) {
        const requests: EntryRequest[] = rows
          .filter((row) => row.key === segment && row.transition === on)
          .map((row) => ({ profileId: row.profile_id, entry: 'segment', variables: { segment_key: segment, transition: row.transition } }));
        await enterProfiles(client, workspaceId, journey.journeyId, requests, now);
      }
      const heard = rows.filter((row) => awaited.has(row.key));
      if (heard.length > 0) await wakeSegmentWaits(client, workspaceId, heard, now);
      await moveCursor(client, workspaceId, 'transitions', rows.length === batchSize ? rows.at(-1)!.id : settled);
      return rows.length;
    });
  }
  return read;
}

/**
 * The segments the segment_wait nodes of every version of the live journeys wait on. Versions
 * never change, so their definitions come from loadVersion's cache; the versions themselves are
 * listed from journey_versions (a few rows per journey).
 */
async function awaitedSegments(db: Queryable, workspaceId: string, journeys: readonly LiveJourney[]): Promise<Set<string>> {
  const awaited = new Set<string>();
  for (const journey of journeys) for (const node of journey.definition.nodes) if (node.kind === 'segment_wait') awaited.add(node.segment);
  const { rows } = await db.query<{ journey_id: string; version: number }>(
    `select v.journey_id, v.version from journey_versions v join journeys j on j.workspace_id = v.workspace_id and j.id = v.journey_id
      where v.workspace_id = $1 and j.status in ('published', 'paused') and v.version <> j.current_version`,
    [workspaceId],
  );
  for (const row of rows) {
    const version = await loadVersion(db, workspaceId, row.journey_id, row.version);
    for (const node of version.definition.nodes) if (node.kind === 'segment_wait') awaited.add(node.segment);
  }
  return awaited;
}

/** Instances waiting at a segment_wait for a transition that has now happened take `happened`. */
async function wakeSegmentWaits(
  client: DbClient,
  workspaceId: string,
  transitions: ReadonlyArray<{ id: number; profile_id: string; transition: 'entered' | 'exited'; key: string }>,
  now: Date,
): Promise<void> {
  const { rows: instances } = await client.query<InstanceRow>(
    `select ${INSTANCE_COLUMNS} from journey_instances i
      where i.workspace_id = $1 and i.profile_id = any($2::uuid[]) and i.status = 'active' and i.phase = 'wait'
      order by i.id for update`,
    [workspaceId, [...new Set(transitions.map((t) => t.profile_id))]],
  );
  for (const instance of instances) {
    const version = await loadVersion(client, workspaceId, instance.journey_id, instance.version);
    const node = nodeById(version.definition, instance.node_id);
    if (node?.kind !== 'segment_wait') continue;
    const transition = transitions.find((t) => t.profile_id === instance.profile_id && t.key === node.segment && t.transition === node.on);
    if (!transition) continue;
    // A transition read late may be older than the wait (entered, then left again before it began):
    // the membership as it is now decides.
    const { rows: member } = await client.query<{ member: boolean }>(
      `select exists (select 1 from segment_memberships m join segments s on s.workspace_id = m.workspace_id and s.id = m.segment_id
                       where m.workspace_id = $1 and m.profile_id = $2 and s.key = $3) as member`,
      [workspaceId, instance.profile_id, node.segment],
    );
    if (member[0]!.member !== (node.on === 'entered')) continue;
    await settleLastStep(client, instance, 'happened', { transition: transition.id });
    instance.node_id = node.happened;
    instance.phase = 'arrive';
    instance.wait_started_at = null;
    instance.due_at = now;
    await saveInstance(client, instance);
  }
}

interface EventRow {
  seq: number;
  type: ProfileEvent['type'];
  event: string | null;
  name: string | null;
  timestamp: Date;
  properties: Record<string, unknown> | null;
  profile_id: string;
}

/**
 * Acts on the events stored since the workspace's cursor, in seq order: event-triggered entries,
 * waits that were waiting for them, then the goals and exits of every running instance of the
 * profiles concerned (checked against each profile as it stands after the batch). Paused
 * journeys still follow events (a wait learns its event happened, a goal converts), but nothing
 * enters them and nothing is sent until they resume. Returns events read.
 */
export async function drainJourneyEvents(db: Db, now: Date, options: IntakeOptions = {}): Promise<number> {
  const batchSize = options.batchSize ?? 1000;
  const live = await liveJourneys(db);
  if (live.size === 0) return 0;
  const settled = await settledSequence(db, `'events_seq'::regclass`, options.settleTimeoutMs ?? SETTLE_TIMEOUT_MS);
  if (settled === null) return 0;
  await prepareTransitionStorage(db, now);
  let read = 0;
  for (const [workspaceId, journeys] of live) {
    read += await withTransaction(db, async (client) => {
      const position = await lockCursor(client, workspaceId, 'events');
      if (position === null) return 0;
      const { rows: queued } = await client.query<{ first: number | null }>('select min(seq) as first from identity_queue where workspace_id = $1', [workspaceId]);
      const upTo = queued[0]!.first === null ? settled : Math.min(settled, queued[0]!.first - 1);
      if (position >= upTo) return 0;
      const { rows } = await client.query<EventRow>(
        `select seq, type, event, name, timestamp, properties, profile_id from events
          where workspace_id = $1 and seq > $2 and seq <= $3 and profile_id is not null
          order by seq limit $4`,
        [workspaceId, position, upTo, batchSize],
      );
      if (rows.length > 0) await actOnEvents(client, workspaceId, journeys, rows, now);
      await moveCursor(client, workspaceId, 'events', rows.length === batchSize ? rows.at(-1)!.seq : upTo);
      return rows.length;
    });
  }
  return read;
}

/** A per-key instance's key from event properties: a string or number property, as text. */
export function instanceKeyOf(properties: Record<string, unknown> | null, property: string): string | undefined {
  const value = properties?.[property];
  if (typeof value === 'string' && value !== '') return value.slice(0, 200);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * A per-key instance hears only events about its key (an order's instance waits for that order's
 * shipment); an event without the key property is heard by all of the profile's instances.
 */
function sameInstanceKey(definition: JourneyDefinition, instance: InstanceRow, properties: Record<string, unknown> | null): boolean {
  if (instance.instance_key === '') return true;
  const trigger = entryNode(definition).trigger;
  if (trigger.kind !== 'event' || !trigger.instanceKey) return true;
  const key = instanceKeyOf(properties, trigger.instanceKey.property);
  return key === undefined || key === instance.instance_key;
}

/** For a per-key instance, goals and exits see only the events about its key (or about no key). */
function keyedSnapshot(definition: JourneyDefinition, instance: InstanceRow, snapshot: ProfileSnapshot): ProfileSnapshot {
  if (instance.instance_key === '') return snapshot;
  return { ...snapshot, events: snapshot.events.filter((event) => sameInstanceKey(definition, instance, event.properties)) };
}

const toProfileEvent = (row: EventRow): ProfileEvent => ({
  seq: row.seq,
  type: row.type,
  event: row.event,
  name: row.name,
  timestamp: row.timestamp.getTime(),
  properties: row.properties,
  context: null,
});

async function actOnEvents(client: DbClient, workspaceId: string, journeys: LiveJourney[], rows: EventRow[], now: Date): Promise<void> {
  // Entries first, so an instance entered by an event can be converted by a later one of the batch.
  for (const journey of journeys) {
    const entry = entryNode(journey.definition);
    if (journey.status !== 'published' || entry.trigger.kind !== 'event') continue;
    const trigger = entry.trigger;
    const requests: EntryRequest[] = rows
      .filter((row) => eventMatches(toProfileEvent(row), trigger.event, trigger.where, row.profile_id))
      .flatMap((row): EntryRequest[] => {
        const request: EntryRequest = { profileId: row.profile_id, entry: 'event', variables: row.properties ?? {} };
        if (!trigger.instanceKey) return [request];
        // Per-key instances: an event without the key property starts none.
        const key = instanceKeyOf(row.properties, trigger.instanceKey.property);
        return key === undefined ? [] : [{ ...request, key }];
      });
    if (requests.length > 0) await enterProfiles(client, workspaceId, journey.journeyId, requests, now);
  }

  const profiles = [...new Set(rows.map((row) => row.profile_id))];
  const { rows: instances } = await client.query<InstanceRow>(
    `select ${INSTANCE_COLUMNS} from journey_instances i
      where i.workspace_id = $1 and i.profile_id = any($2::uuid[]) and i.status = 'active'
      order by i.id for update`,
    [workspaceId, profiles],
  );
  if (instances.length === 0) return;
  const events: SystemEvent[] = [];
  const changed = new Set<InstanceRow>();
  const byProfile = new Map<string, InstanceRow[]>();
  for (const instance of instances) byProfile.set(instance.profile_id, [...(byProfile.get(instance.profile_id) ?? []), instance]);

  // Goals and exits first: an event that meets a goal converts the instance where it is, even
  // when a wait there was waiting for the same event. One snapshot per profile with whatever
  // any of its journeys' rules read.
  const withRules: Array<{ instance: InstanceRow; definition: JourneyDefinition }> = [];
  const reads: ConditionReads = emptyReads();
  for (const instance of instances) {
    const version = await loadVersion(client, workspaceId, instance.journey_id, instance.version);
    if ((version.definition.goals?.length ?? 0) + (version.definition.exits?.length ?? 0) === 0) continue;
    withRules.push({ instance, definition: version.definition });
    rulesReads(version.definition, reads);
  }
  if (withRules.length > 0) {
    // Per-key instances filter the events their rules see by the key property (keyedSnapshot).
    if (withRules.some((w) => w.instance.instance_key !== '')) for (const reference of reads.events) reference.readsProperties = true;
    const needs = snapshotNeeds(reads, now.getTime());
    if (reads.segments.size > 0) {
      const { rows: segments } = await client.query<{ id: string; key: string }>(
        `select id, key from segments where workspace_id = $1 and key = any($2::text[]) and status <> 'archived'`,
        [workspaceId, [...reads.segments]],
      );
      needs.memberships = new Map(segments.map((s) => [s.id, s.key]));
    }
    const snapshots = new Map(
      (await loadProfileSnapshots(client, workspaceId, [...new Set(withRules.map((w) => w.instance.profile_id))], needs)).map((s) => [s.profileId, s]),
    );
    for (const { instance, definition } of withRules) {
      const snapshot = snapshots.get(instance.profile_id);
      if (!snapshot) continue;
      const outcome = checkRules(definition, keyedSnapshot(definition, instance, snapshot), instance.entered_at.getTime(), now.getTime());
      if (!outcome) continue;
      const version = await loadVersion(client, workspaceId, instance.journey_id, instance.version);
      // A delay or wait learns how it ended, for the path view.
      if (instance.phase === 'wait') await settleLastStep(client, instance, outcome.kind, { rule: outcome.rule.id });
      finishInstance(instance, version, outcome.kind, outcome.rule.id, now, events);
      changed.add(instance);
    }
  }
  // Waits for an event, for instances no goal or exit has ended.
  for (const row of rows) {
    for (const instance of byProfile.get(row.profile_id) ?? []) {
      if (instance.status !== 'active' || instance.phase !== 'wait' || instance.wait_started_at === null) continue;
      if (row.timestamp.getTime() < instance.wait_started_at.getTime()) continue;
      const version = await loadVersion(client, workspaceId, instance.journey_id, instance.version);
      const node = nodeById(version.definition, instance.node_id);
      if (node?.kind !== 'wait' || !eventMatches(toProfileEvent(row), node.event, node.where, row.profile_id)) continue;
      if (!sameInstanceKey(version.definition, instance, row.properties)) continue;
      await settleLastStep(client, instance, 'event', { seq: row.seq });
      instance.node_id = node.happened;
      instance.phase = 'arrive';
      instance.wait_started_at = null;
      instance.due_at = now;
      changed.add(instance);
    }
  }

  for (const instance of changed) await saveInstance(client, instance);
  await insertSystemEvents(client, workspaceId, events, now);
}
