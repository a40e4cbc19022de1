import type pg from 'pg';
import { withTransaction, type Db, type DbClient, type Queryable } from '../storage/database.ts';
import type { Condition } from './ast.ts';
import { computedTraitEventNeeds, refreshComputedTraits } from './computed/realtime.ts';
import { activeComputedTraitsFromRows, activeComputedTraitsSql, loadActiveComputedTraits } from './computed/store.ts';
import { dependencyOrder } from './dependencies.ts';
import { hasDrainListeners, noSteps, reportDrainBatch, startStepClock, type StepClock } from './drain-metrics.ts';
import { digestSpec, dropWorkspaceDigests, type DigestSpec } from './digests.ts';
import { evaluateSegment } from './evaluate.ts';
import { encodeSegmentCondition } from '../privacy/pii-segments.ts';
import { DRAIN_PARTS, drainPart, lockWorkspaceSegments, lockWorkspaceSegmentsPartSql, lockWorkspaceSegmentsSql } from './lock.ts';
import { deleteProfileRows, deleteProfileRowsSql, finishByAddressSql, finishQueuedProfiles } from './queue.ts';
import type { Evaluation, ProfileSnapshot } from './snapshot.ts';
import { conditionReads, emptyReads, loadDrainSnapshots, snapshotNeeds, type ConditionReads, type StoredRecheck } from './snapshots.ts';
import { applyMemberCounts, prepareTransitionStorage, recordTransitions, type MembershipChange, type SegmentRef } from './transitions.ts';

/*
 * The real-time evaluator's loop: profiles whose data changed (segment_queue, filled in the
 * transaction of the change) and profiles whose answer may have changed with time
 * (segment_rechecks, due) are evaluated against the workspace's active real-time segments, in
 * batches, under the workspace segment lock; every true transition is recorded once.
 */

export type SegmentEvaluator = (condition: Condition, profile: ProfileSnapshot, now: number) => Evaluation;

export interface DrainOptions {
  /** Most profiles taken from the queue, and most due re-checks, per workspace and call. */
  batchSize?: number;
  /** The clock: evaluations, transition times, due re-checks and retries all read it. */
  now?: Date;
  /**
   * Read events from the per-profile digests (segments/digests.ts) instead of `events`. Off by
   * default: each event of a profile with a digest rewrites its digest row at ingest and
   * resolution (measured +50–90 µs of PostgreSQL per event, and WAL-bound ingest in the 1M
   * real-time bench), against −52–62 % CPU per re-evaluation; see docs/benchmarks.md.
   */
  digests?: boolean;
  /**
   * Drain the workspace's profiles as DRAIN_PARTS disjoint parts at the same time (lock.ts), each on
   * a connection of its own, so one part's reads overlap another's evaluation and writes; each part
   * drains up to PARALLEL_BATCHES batches in a row. Off: one batch under the exclusive lock.
   */
  parallel?: boolean;
  /** Replaces the evaluator (tests make it fail). */
  evaluate?: SegmentEvaluator;
  /** Told about a failed batch or profile; the profiles stay queued either way. */
  onError?: (error: unknown, message: string) => void;
}

export interface RealtimeSegment extends SegmentRef {
  definition: Condition;
  reads: ConditionReads;
}

const DEFAULT_BATCH = 500;
// A profile whose evaluation fails is retried after 5 s, doubling up to an hour: the delay
// after the n-th failure, in SQL, from the attempts before it.
const RETRY_DELAY = (failedBefore: string) => `make_interval(secs => least(5 * power(2, ${failedBefore}), 3600))`;

/**
 * One batch of each workspace with queued profiles or due re-checks. Returns how many profiles
 * were taken (0: nothing to do now). Several workers may run it; the segment lock serialises
 * them per workspace.
 */
export async function drainSegmentQueue(db: Db, options: DrainOptions = {}): Promise<number> {
  const now = options.now ?? new Date();
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  let taken = 0;
  for (const workspaceId of await workspacesWithSegmentWork(db, now)) {
    if (!options.parallel) {
      taken += await drainWorkspace(db, workspaceId, now, options, null);
      continue;
    }
    // Each part goes on while its batches come back full, so the parts fall out of step (one
    // evaluates while the other reads) instead of meeting at every batch.
    const parts = await Promise.all(
      Array.from({ length: DRAIN_PARTS }, async (_, part) => {
        let total = 0;
        for (let batch = 0; batch < PARALLEL_BATCHES; batch++) {
          const n = await drainWorkspace(db, workspaceId, now, options, part);
          total += n;
          if (n < batchSize) break;
        }
        return total;
      }),
    );
    taken += parts.reduce((sum, n) => sum + n, 0);
  }
  return taken;
}

/** Batches each part drains in a row before the workspaces are looked up again. */
const PARALLEL_BATCHES = 8;

/** Workspaces with queued profiles ready to try, or re-checks due at `now`. */
export async function workspacesWithSegmentWork(db: Db, now: Date): Promise<string[]> {
  // Loose index scans (one probe per workspace) over both primary keys, as for identity_queue.
  const { rows } = await db.query<{ workspace_id: string }>(
    `with recursive queued as (
       (select workspace_id from segment_queue order by workspace_id limit 1)
       union all
       select (select q.workspace_id from segment_queue q where q.workspace_id > queued.workspace_id order by q.workspace_id limit 1)
         from queued where queued.workspace_id is not null
     ), rechecked as (
       (select workspace_id from segment_rechecks order by workspace_id limit 1)
       union all
       select (select r.workspace_id from segment_rechecks r where r.workspace_id > rechecked.workspace_id order by r.workspace_id limit 1)
         from rechecked where rechecked.workspace_id is not null
     )
     select workspace_id from queued w where workspace_id is not null and exists (
       select 1 from segment_queue q where q.workspace_id = w.workspace_id and (q.next_attempt_at is null or q.next_attempt_at <= $1))
     union
     select workspace_id from rechecked w where workspace_id is not null and exists (
       select 1 from segment_rechecks r where r.workspace_id = w.workspace_id and r.due_at <= $1)`,
    [now],
  );
  return rows.map((row) => row.workspace_id);
}

interface Work {
  /** Taken from the queue: their data changed. */
  queued: string[];
  /** The queue rows' versions as taken: the rows still at them are ended with the evaluation. */
  queuedVersions: number[];
  /** The queue rows' addresses (ctid) as taken, when taken in the evaluating transaction. */
  queuedRows?: string[];
  /** Due re-checks (not also queued). */
  rechecks: string[];
  /** When each queued profile was first queued (epoch ms), as taken. */
  queuedAt: number[];
  /** The workspace's segments and active computed traits, when read with the take (under the lock). */
  definitions?: { segments: Awaited<ReturnType<typeof loadWorkspaceSegments>>; computedTraits: Awaited<ReturnType<typeof loadActiveComputedTraits>> };
}

/** One batch: of every profile (`part` null, under the exclusive lock), or of one drain part's. */
async function drainWorkspace(db: Db, workspaceId: string, now: Date, options: DrainOptions, part: number | null): Promise<number> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  await prepareTransitionStorage(db, now);
  let work: Work | undefined;
  try {
    const started = performance.now();
    const clock = hasDrainListeners() ? startStepClock() : noSteps;
    let dequeued = 0;
    const taken = await withTransaction(db, async (client) => {
      clock.lap('connect');
      work = await lockAndTakeWork(client, workspaceId, now, batchSize, part);
      clock.lap('lockAndTake');
      const { counts, rechecks } = await evaluateWork(db, client, workspaceId, work, now, options.evaluate ?? evaluateSegment, options.digests ?? false, clock);
      // The segments' rows stay locked from the count update to the commit, and the other drain
      // part waits for them (42–82 ms per batch under the real-time load when the re-checks and the
      // dequeue were three statements after it): one statement follows now. Not after the dequeue,
      // whose row locks an identity batch re-queueing those profiles waits for.
      await applyMemberCounts(client, workspaceId, counts);
      clock.lap('memberCounts');
      dequeued = (await writeRechecksAndDequeue(client, workspaceId, rechecks, work)).dequeued;
      clock.lap('rechecksAndDequeue');
      return work.queued.length + work.rechecks.length;
      // Derived from committed data, dequeued in the same transaction: a lost commit is redone.
    }, { durability: 'local' });
    clock.lap('commit');
    if (work && taken > 0 && hasDrainListeners()) {
      const committed = Date.now();
      reportDrainBatch({
        workspaceId,
        queued: work.queued.length,
        rechecks: work.rechecks.length,
        queueLagMs: work.queuedAt.map((at) => committed - at),
        batchMs: performance.now() - started,
        changedWhileWaiting: work.queuedVersions.filter((version) => version > 0).length,
        changedWhileEvaluated: work.queued.length - dequeued,
        stepsMs: clock.stepsMs,
      });
    }
    return taken;
  } catch (error) {
    if (!work) throw error;
    options.onError?.(error, `segment evaluation of ${work.queued.length + work.rechecks.length} profiles in workspace ${workspaceId} failed; retrying them one by one`);
    // One profile at a time, so one that cannot be evaluated holds up only itself.
    for (const profileId of work.queued) await retryProfile(db, workspaceId, profileId, 'queued', now, options);
    for (const profileId of work.rechecks) await retryProfile(db, workspaceId, profileId, 'recheck', now, options);
    return work.queued.length + work.rechecks.length;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Takes the batch's segment lock (lock.ts: the exclusive one, or the shared one and the part's),
 * then up to `batchSize` queued profiles and due re-checks, and reads the workspace's segments and
 * active computed traits under that lock, in one round trip: a simple-protocol query of several
 * statements, so the values are written into it (a uuid checked as one, a timestamp, integers).
 * Each of its eight statements was a round trip of its own, and under the real-time load every
 * round trip waited on a busy event loop and backend (10–25 ms each at load 7–12).
 */
async function lockAndTakeWork(client: DbClient, workspaceId: string, now: Date, batchSize: number, part: number | null): Promise<Work> {
  if (!UUID.test(workspaceId)) throw new Error(`not a workspace id: ${workspaceId}`);
  const ws = `'${workspaceId}'::uuid`;
  // Hashed as text, as lockWorkspaceSegments hashes the id it is given.
  const wsText = `'${workspaceId}'::text`;
  const at = `'${now.toISOString()}'::timestamptz`;
  const limit = Math.trunc(batchSize);
  const ofPart = part === null ? '' : ` and ${drainPart('profile_id')} = ${Math.trunc(part)}`;
  const lock = part === null ? lockWorkspaceSegmentsSql(wsText) : lockWorkspaceSegmentsPartSql(wsText, part);
  // Both takes read an index in order (workspace, time) and stop after `batchSize` rows. Without
  // statistics on workspace_id the planner estimates a workspace at 0.5 % of the rows, and so
  // preferred a bitmap scan of all of the workspace's rows and a sort: with 1,000,000 re-checks
  // due, each batch read them all.
  // Queue rows are read, not deleted: they are ended after the evaluation, where still at these
  // versions (finishQueuedProfiles), so a change committed meanwhile keeps its profile queued and
  // queueing never waits for this transaction. Drains of a workspace (part) are serialised by the
  // lock. Re-checks are kept: evaluating a profile rewrites (or deletes) its row.
  const results = (await client.query(
    `select ${lock};
     set local enable_sort = off;
     select 'queued' as kind, profile_id, version, floor(extract(epoch from queued_at) * 1000)::float8 as queued_at, ctid::text as row_id from (
       select profile_id, version, queued_at, ctid from segment_queue
        where workspace_id = ${ws} and (next_attempt_at is null or next_attempt_at <= ${at})${ofPart}
        order by queued_at limit ${limit}) q
     union all
     select 'recheck', profile_id, null, null, null from (
       select profile_id from segment_rechecks where workspace_id = ${ws} and due_at <= ${at}${ofPart} order by due_at limit ${limit}) r;
     set local enable_sort = on;
     ${workspaceSegmentsSql(ws)};
     ${activeComputedTraitsSql(ws)}`,
  )) as unknown as pg.QueryResult[];
  // Results in statement order: the lock, the setting, the takes, the setting, segments, computed traits.
  const [, , taken, , segmentRows, traitRows] = results;
  const rows = taken!.rows as Array<{ kind: 'queued' | 'recheck'; profile_id: string; version: number | null; queued_at: number | null; row_id: string | null }>;
  const queued = rows.filter((row) => row.kind === 'queued');
  const queuedSet = new Set(queued.map((row) => row.profile_id));
  return {
    queued: queued.map((row) => row.profile_id),
    queuedVersions: queued.map((row) => row.version!),
    queuedRows: queued.map((row) => row.row_id!),
    queuedAt: queued.map((row) => row.queued_at!),
    rechecks: rows.filter((row) => row.kind === 'recheck' && !queuedSet.has(row.profile_id)).map((row) => row.profile_id),
    definitions: {
      segments: await workspaceSegmentsFromRows(client, workspaceId, segmentRows!.rows as WorkspaceSegmentRow[]),
      computedTraits: activeComputedTraitsFromRows(traitRows!.rows),
    },
  };
}

async function retryProfile(db: Db, workspaceId: string, profileId: string, from: 'queued' | 'recheck', now: Date, options: DrainOptions) {
  try {
    await withTransaction(db, async (client) => {
      await lockWorkspaceSegments(client, workspaceId);
      if (from === 'recheck') {
        const { counts, rechecks } = await evaluateWork(db, client, workspaceId, { queued: [], queuedVersions: [], queuedAt: [], rechecks: [profileId] }, now, options.evaluate ?? evaluateSegment, options.digests ?? false);
        await writeRechecks(client, workspaceId, rechecks);
        await applyMemberCounts(client, workspaceId, counts);
        return;
      }
      // Still queued (another drain may have evaluated it since the batch failed)?
      const { rows } = await client.query<{ version: number }>('select version from segment_queue where workspace_id = $1 and profile_id = $2', [
        workspaceId,
        profileId,
      ]);
      if (rows.length === 0) return;
      const single: Work = { queued: [profileId], queuedVersions: [rows[0]!.version], queuedAt: [], rechecks: [] };
      const { counts, rechecks } = await evaluateWork(db, client, workspaceId, single, now, options.evaluate ?? evaluateSegment, options.digests ?? false);
      await writeRechecks(client, workspaceId, rechecks);
      await finishQueuedProfiles(client, workspaceId, [{ profileId, version: rows[0]!.version }]);
      await applyMemberCounts(client, workspaceId, counts);
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    options.onError?.(error, `segment evaluation of profile ${profileId} in workspace ${workspaceId} failed; retried later`);
    await recordFailure(db, workspaceId, profileId, from, now, message);
  }
}

/** Keeps a failed profile for a later try, a little later each time. */
async function recordFailure(db: Db, workspaceId: string, profileId: string, from: 'queued' | 'recheck', now: Date, message: string) {
  if (from === 'queued') {
    await db.query(
      `insert into segment_queue (workspace_id, profile_id, failed_attempts, next_attempt_at, last_error)
       values ($1, $2, 1, $3::timestamptz + ${RETRY_DELAY('0')}, $4)
       on conflict (workspace_id, profile_id) do update
         set failed_attempts = segment_queue.failed_attempts + 1,
             next_attempt_at = $3::timestamptz + ${RETRY_DELAY('segment_queue.failed_attempts')},
             last_error = excluded.last_error`,
      [workspaceId, profileId, now, message],
    );
  } else {
    // Under the lock: a drain writes a re-check only where it differs from the one it read.
    await withTransaction(db, async (client) => {
      await lockWorkspaceSegments(client, workspaceId);
      await client.query(
        `update segment_rechecks set failed_attempts = failed_attempts + 1, due_at = $3::timestamptz + ${RETRY_DELAY('failed_attempts')}, last_error = $4
          where workspace_id = $1 and profile_id = $2`,
        [workspaceId, profileId, now, message],
      );
    });
  }
}

/**
 * Evaluates the taken profiles and writes the outcome: transitions (cause 'event' for queued
 * profiles, 'expiry' for re-checks), computed trait values, and each profile's next re-check.
 * The caller holds the workspace segment lock in `client`'s transaction; the profiles' data is
 * read from `db` at the same time (loadDrainSnapshots). Returns the member count changes (segment
 * id → delta), which the caller applies (applyMemberCounts) in the same transaction, last.
 */
async function evaluateWork(
  db: Db,
  client: DbClient,
  workspaceId: string,
  work: Work,
  now: Date,
  evaluate: SegmentEvaluator,
  useDigests: boolean,
  clock: StepClock = noSteps,
): Promise<{ counts: Map<string, number>; rechecks: RecheckWrites }> {
  // Summed over both causes' transitions (see applyMemberCounts).
  const counts = new Map<string, number>();
  const all = [...work.queued, ...work.rechecks];
  if (all.length === 0) return { counts, rechecks: { due: [], none: [] } };
  const nowMs = now.getTime();
  const { realtime, keysById } = work.definitions?.segments ?? (await loadWorkspaceSegments(client, workspaceId));
  const segments = orderByDependencies(realtime);
  const computedTraits = work.definitions?.computedTraits ?? (await loadActiveComputedTraits(client, workspaceId));
  clock.lap('segments');
  if (segments.length === 0 && computedTraits.length === 0) {
    // Nothing to keep up to date: what the profiles were queued for has no reader.
    return { counts, rechecks: { due: [], none: all } };
  }
  const reads = drainReads(segments, computedTraits);
  const needs = snapshotNeeds(reads, nowMs);
  // Every segment's memberships, whatever its kind: in_segment may read any of them, and a
  // real-time segment's own membership decides what changed.
  if (segments.length > 0) needs.memberships = keysById;

  // The stored re-checks too (under the lock: every writer of them holds it), so only the ones
  // that change are written, usually none.
  const { snapshots: loaded, rechecks: stored } = await loadDrainSnapshots(client, workspaceId, all, needs, db, { digests: useDigests ? digestSpec(reads) : null, clock });
  clock.lap('read');
  const live = new Set(loaded.map((snapshot) => snapshot.profileId));
  const gone = all.filter((id) => !live.has(id));
  const recheckSet = new Set(work.rechecks);
  const byCause = {
    event: loaded.filter((snapshot) => !recheckSet.has(snapshot.profileId)),
    expiry: loaded.filter((snapshot) => recheckSet.has(snapshot.profileId)),
  };

  const nextRecheck = new Map<string, number>();
  const earliest = (profileId: string, at: number | null) => {
    if (at === null) return;
    const current = nextRecheck.get(profileId);
    if (current === undefined || at < current) nextRecheck.set(profileId, at);
  };
  for (const cause of ['event', 'expiry'] as const) {
    let snapshots = byCause[cause];
    if (snapshots.length === 0) continue;
    if (computedTraits.length > 0) {
      const refreshed = await refreshComputedTraits(client, workspaceId, snapshots, nowMs, { cause, traits: computedTraits });
      snapshots = refreshed.snapshots;
      for (const [profileId, at] of refreshed.recheckAt) earliest(profileId, at);
      clock.lap('computedTraits');
    }
    const changes: MembershipChange[] = [];
    for (const snapshot of snapshots) {
      const result = evaluateProfile(segments, snapshot, nowMs, evaluate);
      changes.push(...result.changes);
      earliest(snapshot.profileId, result.recheckAt);
    }
    clock.lap('evaluate');
    await recordTransitions(client, workspaceId, changes, cause, now, { counts, clock });
  }
  return { counts, rechecks: planRechecks(stored, nextRecheck, nowMs, gone) };
}

/**
 * Evaluates every segment (in dependency order) on one profile: the membership changes, and the
 * earliest re-check over all segments. A segment that reads another sees its new membership.
 */
export function evaluateProfile(
  segments: readonly RealtimeSegment[],
  snapshot: ProfileSnapshot,
  now: number,
  evaluate: SegmentEvaluator = evaluateSegment,
): { changes: MembershipChange[]; recheckAt: number | null } {
  const memberships = new Set(snapshot.memberships);
  // The same events array: the evaluator's per-events caches carry over between segments.
  const view: ProfileSnapshot = { ...snapshot, memberships };
  const changes: MembershipChange[] = [];
  let recheckAt: number | null = null;
  for (const segment of segments) {
    const result = evaluate(segment.definition, view, now);
    if (result.member !== memberships.has(segment.key)) {
      changes.push({ segment: { id: segment.id, key: segment.key, name: segment.name, version: segment.version }, profileId: snapshot.profileId, member: result.member });
      if (result.member) memberships.add(segment.key);
      else memberships.delete(segment.key);
    }
    if (result.recheckAt !== null && (recheckAt === null || result.recheckAt < recheckAt)) recheckAt = result.recheckAt;
  }
  return { changes, recheckAt };
}

/** The re-check rows a batch writes: next due times that differ from the stored ones, and rows to delete. */
interface RecheckWrites {
  due: Array<readonly [profileId: string, at: number]>;
  none: string[];
}

function planRechecks(stored: readonly StoredRecheck[], nextRecheck: ReadonlyMap<string, number>, now: number, gone: readonly string[]): RecheckWrites {
  const goneSet = new Set(gone);
  const current = new Map(stored.map((row) => [row.profileId, row]));
  // Never in the past: a re-check due now would be taken again at once, forever.
  const due = [...nextRecheck]
    .filter(([profileId]) => !goneSet.has(profileId))
    .map(([profileId, at]) => [profileId, Math.max(at, now + 1)] as const)
    .filter(([profileId, at]) => {
      const row = current.get(profileId);
      return !row || row.dueAt !== at || row.failedAttempts !== 0;
    });
  const none = stored.map((row) => row.profileId).filter((id) => !nextRecheck.has(id) || goneSet.has(id));
  return { due, none };
}

const UPSERT_RECHECKS = (workspace: string, profileIds: string, dueAts: string) =>
  `insert into segment_rechecks (workspace_id, profile_id, due_at)
   select ${workspace}, p, d from unnest(${profileIds}::uuid[], ${dueAts}::timestamptz[]) as r(p, d)
   on conflict (workspace_id, profile_id) do update set due_at = excluded.due_at, failed_attempts = 0, last_error = null`;

async function writeRechecks(client: DbClient, workspaceId: string, writes: RecheckWrites): Promise<void> {
  if (writes.due.length > 0) {
    await client.query(UPSERT_RECHECKS('$1', '$2', '$3'), [workspaceId, writes.due.map(([profileId]) => profileId), writes.due.map(([, at]) => new Date(at))]);
  }
  if (writes.none.length > 0) await deleteProfileRows(client, 'segment_rechecks', workspaceId, writes.none);
}

/**
 * A batch's last writes but the member counts, in one statement: its re-checks (written, deleted)
 * and the end of its queue rows (finishQueuedProfiles, by address). Three round trips before.
 * The two re-check parts touch different profiles' rows.
 */
async function writeRechecksAndDequeue(client: DbClient, workspaceId: string, writes: RecheckWrites, work: Work): Promise<{ dequeued: number }> {
  if (!work.queuedRows) throw new Error('the queue rows were not taken by address');
  const { rows } = await client.query<{ dequeued: number }>(
    `with upserted as (${UPSERT_RECHECKS('$1', '$2', '$3')} returning 1),
     removed as (${deleteProfileRowsSql('segment_rechecks', '$1', '$4')} returning 1),
     dequeued as (${finishByAddressSql('$1', '$5', '$6', '$7')} returning 1)
     select (select count(*) from upserted)::int as upserted, (select count(*) from removed)::int as removed, (select count(*) from dequeued)::int as dequeued`,
    [
      workspaceId,
      writes.due.map(([profileId]) => profileId),
      writes.due.map(([, at]) => new Date(at)),
      writes.none,
      work.queuedRows,
      work.queued,
      work.queuedVersions,
    ],
  );
  return { dequeued: rows[0]!.dequeued };
}

function mergeReads(into: ConditionReads, from: ConditionReads): void {
  into.events.push(...from.events);
  into.traits ||= from.traits;
  into.identifiers ||= from.identifiers;
  into.consents ||= from.consents;
  for (const key of from.segments) into.segments.add(key);
}

// Parsed definitions by segment id and version: the evaluator compiles a condition once per
// object, so the same object must come back batch after batch.
const definitions = new Map<string, { definition: Condition; reads: ConditionReads }>();
const MAX_CACHED_DEFINITIONS = 10_000;

/** What the drain reads of a profile for these segments and computed traits. */
function drainReads(segments: readonly RealtimeSegment[], computedTraits: Awaited<ReturnType<typeof loadActiveComputedTraits>>): ConditionReads {
  const reads = emptyReads();
  for (const segment of segments) mergeReads(reads, segment.reads);
  reads.events.push(...computedTraitEventNeeds(computedTraits.map((trait) => trait.definition)));
  return reads;
}

/**
 * Drops the digests no drain reads (segments/digests.ts): every workspace's when the drain runs
 * without digests, else those of workspaces whose real-time segments and computed traits read no
 * events now; their triggers would otherwise go on appending rows nothing folds. A drain that wants
 * digests again makes a new spec (a newer version) and builds them. Returns the workspaces dropped.
 */
export async function dropUnreadDigests(db: Db, digestsOn: boolean): Promise<number> {
  const { rows } = await db.query<{ workspace_id: string }>('select workspace_id from segment_event_digest_specs');
  let dropped = 0;
  for (const { workspace_id: workspaceId } of rows) {
    if (digestsOn && (await workspaceDigestSpec(db, workspaceId)) !== null) continue;
    if (await dropWorkspaceDigests(db, workspaceId)) dropped++;
  }
  return dropped;
}

/** The digest spec the drain uses for the workspace's active real-time segments and computed traits now (null: none). */
export async function workspaceDigestSpec(db: Db, workspaceId: string): Promise<DigestSpec | null> {
  const { realtime } = await loadWorkspaceSegments(db, workspaceId);
  const computedTraits = await loadActiveComputedTraits(db, workspaceId);
  if (realtime.length === 0 && computedTraits.length === 0) return null;
  return digestSpec(drainReads(realtime, computedTraits));
}

/**
 * The workspace's segments: the ones the real-time evaluator keeps up to date (real-time, active,
 * computed: state ready), and the key of every segment by id.
 */
export async function loadWorkspaceSegments(
  client: Queryable,
  workspaceId: string,
): Promise<{ realtime: RealtimeSegment[]; keysById: Map<string, string> }> {
  const { rows } = await client.query<WorkspaceSegmentRow>(workspaceSegmentsSql('$1'), [workspaceId]);
  return workspaceSegmentsFromRows(client, workspaceId, rows);
}

interface WorkspaceSegmentRow {
  id: string;
  key: string;
  name: string;
  version: number;
  definition: Condition | null;
}

/** loadWorkspaceSegments's query, for `workspace` (SQL: a parameter or literal of type uuid). */
const workspaceSegmentsSql = (workspace: string) =>
  `select id, key, name, version,
          case when kind = 'realtime' and status = 'active' and state = 'ready' then definition end as definition
     from segments where workspace_id = ${workspace}`;

async function workspaceSegmentsFromRows(
  client: Queryable,
  workspaceId: string,
  all: readonly WorkspaceSegmentRow[],
): Promise<{ realtime: RealtimeSegment[]; keysById: Map<string, string> }> {
  const keysById = new Map(all.map((row) => [row.id, row.key]));
  const rows = all.filter((row): row is typeof row & { definition: Condition } => row.definition !== null);
  const realtime: RealtimeSegment[] = [];
  for (const row of rows) {
    const cacheKey = `${row.id}:${row.version}:${JSON.stringify(row.definition)}`;
    let cached = definitions.get(cacheKey);
    if (!cached) {
      if (definitions.size >= MAX_CACHED_DEFINITIONS) definitions.clear();
      // Literals compared with encrypted PII traits become the tokens the traits hold (privacy/pii-segments.ts).
      const definition = await encodeSegmentCondition(client, workspaceId, row.definition);
      cached = { definition, reads: conditionReads(definition) };
      definitions.set(cacheKey, cached);
    }
    realtime.push({ id: row.id, key: row.key, name: row.name, version: row.version, ...cached });
  }
  return { realtime, keysById };
}

/** Segments ordered so that one reading another (in_segment) comes after it. */
export function orderByDependencies(segments: readonly RealtimeSegment[]): RealtimeSegment[] {
  const byKey = new Map(segments.map((segment) => [segment.key, segment]));
  const uses = new Map(segments.map((segment) => [segment.key, [...segment.reads.segments]]));
  let order: string[];
  try {
    order = dependencyOrder(uses, [...byKey.keys()]);
  } catch {
    // A cycle is refused when saving; should one exist anyway, evaluate rather than stop.
    order = [...byKey.keys()].sort();
  }
  return order.map((key) => byKey.get(key)!);
}
