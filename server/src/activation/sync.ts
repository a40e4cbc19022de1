import { openPii } from '../privacy/pii-codec.ts';
import crypto from 'node:crypto';
import type { Task, TaskList } from 'graphile-worker';
import type { Db, Queryable } from '../storage/database.ts';
import { settledSequence } from '../storage/settle.ts';
import { effectiveSettings, type DestinationSettings } from './destinations.ts';
import type { DestinationSettingsInput } from './schemas.ts';
import {
  ATTEMPT_HEADER,
  BATCH_ID_HEADER,
  buildPayload,
  describeAttempt,
  isDelivered,
  judgeAttempt,
  SIGNATURE_HEADER,
  signatureHeader,
  type AttemptResult,
  type Identifiers,
  type MembershipChangeRow,
  type Verdict,
} from './webhook.ts';

/**
 * Delivery of segment membership changes to webhook destinations.
 *
 * Per (destination, segment) pair, batches go out strictly in order: transitions are read from
 * the segment_transitions outbox after the pair's cursor, in id order, and the next batch is
 * built only once the previous one is settled. A batch is frozen (body and batch id) when first
 * built, so every retry is the same request. Delivery is at least once: a receiver that answered
 * 2xx too late (after our timeout) sees the batch again on the retry, under the same
 * X-Touchpoint-Batch-Id, which is its idempotency key.
 *
 * A batch that fails `maxAttempts` times, or is refused with a 4xx other than 408/429, goes to
 * the dead letters and the pair moves on. Holding the pair until the receiver recovers would
 * stall every later change of the segment behind one bad batch (and one poisonous batch would
 * stall it forever); moving on keeps the audience current, and the dead letter keeps the batch
 * whole for an operator to redeliver or discard. A receiver that applies a redelivered batch
 * after later ones should order by each change's transitionId (or `at`).
 *
 * Scheduling: `activation.sync` jobs, one queue and one job key per pair, so at most one runs
 * and at most one waits per pair; `activation.sweep` runs every second while any pair is active
 * and enqueues pairs with something to send whose retry is due. Connecting a segment (or
 * resuming a destination) starts the sweep.
 */

export const SWEEP_TASK = 'activation.sweep';
export const SYNC_TASK = 'activation.sync';
const SWEEP_INTERVAL_MS = 1_000;
// One job run delivers at most this many batches before handing over to the next job, so a
// large backlog of one pair does not hold a worker slot for minutes.
const BATCHES_PER_RUN = 20;
// How long a sync waits for in-flight transactions to end before leaving the pair to the next sweep.
const SETTLE_TIMEOUT_MS = 2_000;

export type Post = (url: string, init: { headers: Record<string, string>; body: string; timeoutMs: number }) => Promise<AttemptResult>;

export interface SyncDeps {
  db: Db;
  now?: () => Date;
  /** In [0, 1); the backoff's jitter. */
  random?: () => number;
  post?: Post;
}

export interface PairRef {
  workspaceId: string;
  destinationId: string;
  segmentId: string;
}

export interface SyncResult {
  delivered: number;
  dead: number;
  /** When the pair's next attempt is due (a batch is waiting for its backoff to pass). */
  retryAt?: Date;
  /** The run stopped at its batch budget with more to send. */
  more: boolean;
  /** Transactions that may still commit transitions did not end in time; try again shortly. */
  unsettled?: boolean;
}

const RESPONSE_EXCERPT_BYTES = 2048;

/** POSTs with fetch; redirects are not followed (a signed body goes only where it was configured). */
export const fetchPost: Post = async (url, init) => {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: init.headers,
      body: init.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(init.timeoutMs),
    });
    let body = '';
    // A 2xx is all we need; a failure's first bytes go into the error an operator reads.
    if (response.body && (response.status < 200 || response.status >= 300)) {
      try {
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        while (body.length < RESPONSE_EXCERPT_BYTES) {
          const { done, value } = await reader.read();
          if (done) break;
          body += decoder.decode(value, { stream: true });
        }
        await reader.cancel().catch(() => undefined);
      } catch {
        // The status is the answer; an unreadable body only loses the excerpt.
      }
    } else {
      await response.body?.cancel().catch(() => undefined);
    }
    return { kind: 'response', status: response.status, retryAfter: response.headers.get('retry-after'), body };
  } catch (error) {
    const name = (error as Error | undefined)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') return { kind: 'timeout', timeoutMs: init.timeoutMs };
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { kind: 'network', message: cause?.code ?? cause?.message ?? (error as Error).message };
  }
};

/** The headers of one attempt: JSON, the signature over this attempt's timestamp, the batch id. */
export function attemptHeaders(secret: string, body: string, batchId: string, attempt: number, now: Date): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'Touchpoint-Webhooks/0.1',
    [SIGNATURE_HEADER]: signatureHeader(secret, body, Math.floor(now.getTime() / 1000)),
    [BATCH_ID_HEADER]: batchId,
    [ATTEMPT_HEADER]: String(attempt),
  };
}

/**
 * The highest transition id below which the outbox can no longer change, or null if in-flight
 * transactions did not end within `timeoutMs`. Transition ids are taken when a row is inserted
 * but become visible at commit, so a reader that advanced its cursor past a committed id could
 * skip a smaller one committed a moment later: storage/settle.ts waits out every transaction
 * that could still commit one (recordTransitions writes memberships before numbering a
 * transition, so such a transaction already has its id).
 */
export async function settledTransitionId(db: Queryable, timeoutMs = SETTLE_TIMEOUT_MS): Promise<number | null> {
  return settledSequence(db, `pg_get_serial_sequence('segment_transitions', 'id')::regclass`, timeoutMs);
}

interface PairRow {
  destination_name: string;
  url: string;
  secret: string;
  destination_status: string;
  settings: DestinationSettingsInput;
  segment_key: string;
  segment_name: string;
  status: string;
  cursor: number;
  backfill_pending: boolean;
  backfill_after: string | null;
  pending_batch_id: string | null;
  pending_body: string | null;
  attempts: number;
  next_attempt_at: Date | null;
}

async function loadPair(db: Queryable, pair: PairRef): Promise<PairRow | undefined> {
  const { rows } = await db.query<PairRow>(
    `select d.name as destination_name, d.url, d.secret, d.status as destination_status, d.settings,
            s.key as segment_key, s.name as segment_name, ds.status, ds.cursor, ds.backfill_pending, ds.backfill_after,
            ds.pending_batch_id, ds.pending_payload::text as pending_body, ds.attempts, ds.next_attempt_at
       from destination_segments ds
       join destinations d on d.workspace_id = ds.workspace_id and d.id = ds.destination_id
       join segments s on s.workspace_id = ds.workspace_id and s.id = ds.segment_id
      where ds.workspace_id = $1 and ds.destination_id = $2 and ds.segment_id = $3`,
    [pair.workspaceId, pair.destinationId, pair.segmentId],
  );
  return rows[0];
}

/** Live identifiers of the profiles, most recently seen first within a type. */
async function identifiersOf(
  db: Queryable,
  workspaceId: string,
  profileIds: readonly string[],
  types: readonly string[] | null,
): Promise<Map<string, Identifiers>> {
  const { rows: stored } = await db.query<{ profile_id: string; type: string; values: string[] }>(
    `select profile_id, type, array_agg(value order by last_seen desc, id desc) as values
       from profile_identifiers
      where workspace_id = $1 and profile_id = any($2::uuid[]) and unbound_at is null and ($3::text[] is null or type = any($3::text[]))
      group by profile_id, type order by profile_id, type`,
    [workspaceId, [...new Set(profileIds)], types],
  );
  const result = new Map<string, Identifiers>();
  // PII identifier values are stored as keyed-hash tokens that mean nothing outside this workspace:
  // the destination gets the values of the types its settings name (docs/activation.md, "Personal data").
  for (const row of await openPii(db, workspaceId, stored)) {
    const identifiers = result.get(row.profile_id) ?? {};
    identifiers[row.type] = row.values;
    result.set(row.profile_id, identifiers);
  }
  return result;
}

interface NextBatch {
  changes: MembershipChangeRow[];
  throughTransition: number | null;
  throughProfile: string | null;
  backfillDone: boolean | null;
}

/** The next changes to send: current members while a backfill is pending, then transitions up to `settled`. */
async function readNextChanges(db: Queryable, pair: PairRef, row: PairRow, settled: number, batchSize: number): Promise<NextBatch | 'backfill_done' | null> {
  if (row.backfill_pending) {
    // A member with a transition after the cursor is left to the transitions, which follow and
    // say where it ended up; sending it here too would deliver its entry twice.
    const { rows } = await db.query<{ profile_id: string; entered_at: Date }>(
      `select m.profile_id, m.entered_at from segment_memberships m
        where m.workspace_id = $1 and m.segment_id = $2 and m.profile_id > $3::uuid
          and not exists (select 1 from segment_transitions t
                           where t.workspace_id = m.workspace_id and t.profile_id = m.profile_id and t.id > $5 and t.segment_id = m.segment_id)
        order by m.profile_id limit $4`,
      [pair.workspaceId, pair.segmentId, row.backfill_after ?? '00000000-0000-0000-0000-000000000000', batchSize, row.cursor],
    );
    if (rows.length === 0) return 'backfill_done';
    return {
      changes: rows.map((r) => ({ profileId: r.profile_id, change: 'add', at: r.entered_at.toISOString(), transitionId: null })),
      throughTransition: null,
      throughProfile: rows[rows.length - 1]!.profile_id,
      backfillDone: rows.length < batchSize,
    };
  }
  const { rows } = await db.query<{ id: number; profile_id: string; transition: 'entered' | 'exited'; at: Date }>(
    `select id, profile_id, transition, at from segment_transitions
      where workspace_id = $1 and segment_id = $2 and id > $3 and id <= $4 order by id limit $5`,
    [pair.workspaceId, pair.segmentId, row.cursor, settled, batchSize],
  );
  if (rows.length === 0) return null;
  return {
    changes: rows.map((r) => ({
      profileId: r.profile_id,
      change: r.transition === 'entered' ? 'add' : 'remove',
      at: r.at.toISOString(),
      transitionId: r.id,
    })),
    throughTransition: rows[rows.length - 1]!.id,
    throughProfile: null,
    backfillDone: null,
  };
}

/**
 * Builds and freezes the pair's next batch: 'prepared', 'idle' when there is nothing to send (or
 * the pair changed meanwhile), 'unsettled' when in-flight transactions kept the outbox open.
 */
async function prepareBatch(
  db: Db,
  pair: PairRef,
  row: PairRow,
  settings: DestinationSettings,
  settled: () => Promise<number | null>,
): Promise<'prepared' | 'idle' | 'unsettled'> {
  for (;;) {
    // While a backfill is pending this also orders the member read after every transaction that
    // numbered a transition up to the cursor, so a change made just before the connection is
    // either among the members read or after the cursor, never missed by both.
    const upTo = await settled();
    if (upTo === null || upTo < row.cursor) return 'unsettled';
    const next = await readNextChanges(db, pair, row, upTo, settings.batchSize);
    if (next === null) return 'idle';
    if (next === 'backfill_done') {
      await db.query(
        `update destination_segments set backfill_pending = false
          where workspace_id = $1 and destination_id = $2 and segment_id = $3 and pending_batch_id is null`,
        [pair.workspaceId, pair.destinationId, pair.segmentId],
      );
      row.backfill_pending = false;
      continue;
    }
    const identifiers = await identifiersOf(db, pair.workspaceId, next.changes.map((c) => c.profileId), settings.identifiers);
    const batchId = crypto.randomUUID();
    const payload = buildPayload({
      destination: { id: pair.destinationId, name: row.destination_name },
      segment: { key: row.segment_key, name: row.segment_name },
      batchId,
      changes: next.changes,
      identifiers,
    });
    const { rowCount } = await db.query(
      `update destination_segments
          set pending_batch_id = $4, pending_payload = $5::json, pending_through_transition = $6, pending_through_profile = $7,
              pending_backfill_done = $8, attempts = 0, first_attempt_at = null, next_attempt_at = null, last_attempt_at = null
        where workspace_id = $1 and destination_id = $2 and segment_id = $3 and pending_batch_id is null and cursor = $9`,
      [pair.workspaceId, pair.destinationId, pair.segmentId, batchId, JSON.stringify(payload), next.throughTransition, next.throughProfile, next.backfillDone, row.cursor],
    );
    return rowCount === 1 ? 'prepared' : 'idle';
  }
}

/**
 * Applies a verdict to the pair's pending batch, in one statement: delivered advances the cursor
 * (or the backfill) while clearing the batch; dead moves the batch to the dead letters and
 * advances the same way; retry counts the attempt and sets when the next one is due.
 * Conditioned on the batch id, so a pair disconnected or reset meanwhile is left alone.
 */
async function settleBatch(db: Queryable, pair: PairRef, batchId: string, verdict: Verdict, at: Date): Promise<void> {
  const key = [pair.workspaceId, pair.destinationId, pair.segmentId, batchId, at];
  if (verdict.outcome === 'retry') {
    await db.query(
      `update destination_segments
          set attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, $5), last_attempt_at = $5,
              next_attempt_at = $5::timestamptz + make_interval(secs => $6::double precision / 1000), last_error = $7
        where workspace_id = $1 and destination_id = $2 and segment_id = $3 and pending_batch_id = $4`,
      [...key, verdict.delayMs, verdict.error],
    );
    return;
  }
  const dead = verdict.outcome === 'dead';
  await db.query(
    `with done as (
       select * from destination_segments
        where workspace_id = $1 and destination_id = $2 and segment_id = $3 and pending_batch_id = $4 for update),
     letter as (
       insert into destination_dead_letters
         (workspace_id, destination_id, segment_id, batch_id, payload, change_count, attempts, last_error, first_attempt_at, last_attempt_at)
       select workspace_id, destination_id, segment_id, pending_batch_id, pending_payload, json_array_length(pending_payload -> 'changes'),
              attempts + 1, $7, coalesce(first_attempt_at, $5), $5
         from done where $6::boolean)
     update destination_segments ds
        set cursor = coalesce(done.pending_through_transition, ds.cursor),
            backfill_after = coalesce(done.pending_through_profile, ds.backfill_after),
            backfill_pending = ds.backfill_pending and not coalesce(done.pending_backfill_done, false),
            pending_batch_id = null, pending_payload = null, pending_through_transition = null, pending_through_profile = null,
            pending_backfill_done = null, attempts = 0, first_attempt_at = null, next_attempt_at = null, last_attempt_at = $5,
            last_error = case when $6::boolean then $7::text else null end,
            last_delivered_at = case when $6 then ds.last_delivered_at else $5 end,
            delivered_batches = ds.delivered_batches + case when $6 then 0 else 1 end,
            delivered_changes = ds.delivered_changes + case when $6 then 0 else json_array_length(done.pending_payload -> 'changes') end,
            dead_batches = ds.dead_batches + case when $6 then 1 else 0 end
       from done
      where ds.workspace_id = done.workspace_id and ds.destination_id = done.destination_id and ds.segment_id = done.segment_id`,
    [...key, dead, dead ? verdict.error : null],
  );
}

/**
 * Sends the pair's batches in order until there is nothing settled left to send, a batch must
 * wait for its backoff, or the run's budget is spent.
 */
export async function syncPair(deps: SyncDeps, pair: PairRef, budget = BATCHES_PER_RUN): Promise<SyncResult> {
  const now = deps.now ?? (() => new Date());
  const random = deps.random ?? Math.random;
  const post = deps.post ?? fetchPost;
  const result: SyncResult = { delivered: 0, dead: 0, more: false };
  let settledId: number | null | undefined;
  const settled = async () => (settledId ??= await settledTransitionId(deps.db));

  for (let sent = 0; ; sent++) {
    if (sent >= budget) return { ...result, more: true };
    let row = await loadPair(deps.db, pair);
    if (!row || row.status !== 'active' || row.destination_status !== 'active') return result;
    const settings = effectiveSettings(row.settings);
    if (!row.pending_batch_id) {
      const prepared = await prepareBatch(deps.db, pair, row, settings, settled);
      if (prepared === 'unsettled') return { ...result, unsettled: true };
      if (prepared === 'idle') return result;
      row = await loadPair(deps.db, pair);
      if (!row?.pending_batch_id || !row.pending_body) return result;
    }
    if (row.next_attempt_at && row.next_attempt_at > now()) return { ...result, retryAt: row.next_attempt_at };

    const attempt = row.attempts + 1;
    const body = row.pending_body!;
    const outcome = await post(row.url, {
      headers: attemptHeaders(row.secret, body, row.pending_batch_id, attempt, now()),
      body,
      timeoutMs: settings.timeoutMs,
    });
    const at = now();
    const verdict = judgeAttempt(outcome, attempt, settings, at, random());
    await settleBatch(deps.db, pair, row.pending_batch_id, verdict, at);
    if (verdict.outcome === 'retry') return { ...result, retryAt: new Date(at.getTime() + verdict.delayMs) };
    if (verdict.outcome === 'delivered') result.delivered++;
    else result.dead++;
  }
}

/** One attempt to deliver a dead letter's body again, signed afresh with the destination's current secret. */
export async function attemptRedelivery(
  body: string,
  batchId: string,
  attempt: number,
  target: { url: string; secret: string; timeoutMs: number },
  now: Date,
  post: Post = fetchPost,
): Promise<{ delivered: true } | { delivered: false; error: string }> {
  const outcome = await post(target.url, { headers: attemptHeaders(target.secret, body, batchId, attempt, now), body, timeoutMs: target.timeoutMs });
  return isDelivered(outcome) ? { delivered: true } : { delivered: false, error: describeAttempt(outcome) };
}

const pairKey = (pair: PairRef) => `${SYNC_TASK}:${pair.destinationId}:${pair.segmentId}`;

/**
 * Enqueues a pair's sync job. The job key keeps one waiting job per pair and the named queue
 * runs them one at a time; `preserve_run_at` keeps a waiting retry's later run time unless
 * `runAt` says otherwise.
 */
export async function enqueueSync(db: Queryable, pair: PairRef, runAt?: Date): Promise<void> {
  const key = pairKey(pair);
  await db.query(
    `select graphile_worker.add_job($1::text, $2::json, queue_name => $3::text, run_at => $4::timestamptz, max_attempts => 5, job_key => $3::text,
       job_key_mode => case when $4::timestamptz is null then 'preserve_run_at' else 'replace' end)`,
    [SYNC_TASK, JSON.stringify(pair), key, runAt ?? null],
  );
}

/**
 * Starts the sweep (or leaves the waiting one as it is). A sweep that cannot re-arm itself (the
 * database is unreachable) fails and graphile-worker retries it with its own backoff.
 */
export async function scheduleSweep(db: Queryable, runAt?: Date): Promise<void> {
  await db.query(
    `select graphile_worker.add_job($1::text, '{}'::json, run_at => $2::timestamptz, max_attempts => 25, job_key => $1::text,
       job_key_mode => case when $2::timestamptz is null then 'preserve_run_at' else 'replace' end)`,
    [SWEEP_TASK, runAt ?? null],
  );
}

/** Starts the sweep if any segment is connected to an active destination (at server start). */
export async function resumeSweep(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ active: boolean }>(
    `select exists (select 1 from destination_segments ds
                      join destinations d on d.workspace_id = ds.workspace_id and d.id = ds.destination_id
                     where ds.status = 'active' and d.status = 'active') as active`,
  );
  if (rows[0]!.active) await scheduleSweep(db);
  return rows[0]!.active;
}

/** Pairs of active destinations with something to send now: a due batch, a backfill, or transitions after the cursor. */
export async function duePairs(db: Queryable, at: Date): Promise<{ due: PairRef[]; active: number }> {
  const { rows } = await db.query<PairRef & { due: boolean }>(
    `select ds.workspace_id as "workspaceId", ds.destination_id as "destinationId", ds.segment_id as "segmentId",
            (case when ds.pending_batch_id is not null then ds.next_attempt_at is null or ds.next_attempt_at <= $1
                  else ds.backfill_pending or exists (
                    select 1 from segment_transitions t
                     where t.workspace_id = ds.workspace_id and t.segment_id = ds.segment_id and t.id > ds.cursor) end) as due
       from destination_segments ds
       join destinations d on d.workspace_id = ds.workspace_id and d.id = ds.destination_id
      where ds.status = 'active' and d.status = 'active'`,
    [at],
  );
  return { due: rows.filter((row) => row.due).map(({ workspaceId, destinationId, segmentId }) => ({ workspaceId, destinationId, segmentId })), active: rows.length };
}

/** One sweep: enqueue every due pair; returns how many pairs are active (the sweep stops when none are). */
export async function sweepOnce(db: Queryable, at: Date): Promise<{ enqueued: number; active: number }> {
  const { due, active } = await duePairs(db, at);
  for (const pair of due) await enqueueSync(db, pair);
  return { enqueued: due.length, active };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parsePairPayload(payload: unknown): PairRef {
  const p = payload as Partial<Record<keyof PairRef, unknown>> | null;
  if (p && [p.workspaceId, p.destinationId, p.segmentId].every((v) => typeof v === 'string' && UUID.test(v))) return p as PairRef;
  throw new Error(`${SYNC_TASK} payload must be { workspaceId, destinationId, segmentId } (uuids), got ${JSON.stringify(payload)}`);
}

/** The graphile-worker tasks of activation (registered in worker/tasks.ts). */
export function activationTasks(deps: SyncDeps, sweepIntervalMs = SWEEP_INTERVAL_MS): TaskList {
  const now = deps.now ?? (() => new Date());
  const sweep: Task = async (_payload, helpers) => {
    let active = 1;
    try {
      active = (await sweepOnce(deps.db, now())).active;
    } catch (error) {
      helpers.logger.error(`activation sweep failed: ${(error as Error).message}`, { error });
    }
    // Always re-armed while anything is connected, even after an error: the sweep is what
    // keeps every pair moving. With nothing connected it ends; connecting a segment, resuming a
    // destination or starting the server (activationRoutes) starts it again.
    if (active > 0) await scheduleSweep(deps.db, new Date(Date.now() + sweepIntervalMs));
  };
  const sync: Task = async (payload) => {
    const pair = parsePairPayload(payload);
    const result = await syncPair(deps, pair);
    if (result.more) await enqueueSync(deps.db, pair, new Date());
    else if (result.retryAt) await enqueueSync(deps.db, pair, result.retryAt);
    else if (result.unsettled) await enqueueSync(deps.db, pair, new Date(Date.now() + sweepIntervalMs));
  };
  return { [SWEEP_TASK]: sweep, [SYNC_TASK]: sync };
}
