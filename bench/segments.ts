/**
 * Segment benchmark on one embedded PostgreSQL in a temporary folder, over the retail data of
 * bench/segments-data.ts (default 1,000,000 profiles and 20,000,000 events):
 *
 * 0. The 20 segments of bench/segments-catalogue.ts are created as real-time segments through the
 *    segment lifecycle (createSegment: parse, check, full computation writing memberships).
 * (a) Full evaluation: for each segment, the compiled query (compileSegmentQuery) and the
 *     hand-written SQL, each run 3× alternating, counted in PostgreSQL; medians, the ratio per
 *     segment and the geometric mean (target ≤ 1.5×). Both must return the same profiles (count
 *     and a hash of the sorted ids); a mismatch is reported, never hidden.
 * (b) Preview (size + sample of 20, previewSegment) of the 20 segments, three times each, against
 *     the true size from (a): estimate, 95 % interval and whether it holds the truth (target < 2 s).
 * (c) Incremental throughput: 50,000 profiles queued, drained by drainSegmentQueue against the
 *     20 real-time segments together with the re-checks that creating them made due; profile
 *     re-evaluations/s (target ≥ 5,000).
 * (d) Real-time latency: the server and the worker (identity + segment loops) running, retail
 *     events sent at 2,000 events/s through POST /v1/batch for 60 s by a child process
 *     (bench/segments-load.ts), one probe event per request whose membership flip is watched in
 *     segment_transitions: event stored (answered 200) → membership changed, p50/p99 (target
 *     p99 < 1 s).
 *
 * Standalone: `node --import tsx bench/segments.ts`; also `npm run bench -- --only segments`.
 * Sizes: BENCH_SEGMENT_PROFILES (1,000,000), BENCH_SEGMENT_EVENTS (20,000,000),
 * BENCH_SEGMENT_QUEUE (50,000), BENCH_SEGMENT_CATCHUP_SECONDS (600, phase (c)'s budget),
 * BENCH_SEGMENT_RATE (2,000 events/s), BENCH_SEGMENT_SECONDS (60), BENCH_SEGMENT_SEED.
 */
import { createIngestLoad } from '../server/src/ingest/load.ts';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import pg from 'pg';
import { buildServer } from '../server/src/api/server.ts';
import { loadConfig } from '../server/src/config.ts';
import type { Condition } from '../server/src/segments/ast.ts';
import { parseSegment } from '../server/src/segments/language/parse.ts';
import { createSegment } from '../server/src/segments/lifecycle.ts';
import { previewSegment, type PreviewOptions } from '../server/src/segments/preview.ts';
import { onDrainBatch } from '../server/src/segments/drain-metrics.ts';
import { drainSegmentQueue } from '../server/src/segments/realtime.ts';
import { compileSegmentQuery } from '../server/src/segments/sql/compile.ts';
import { listLiveSegments, segmentIdsByKey } from '../server/src/segments/store.ts';
import { createPool, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { horizonPassed, readSequenceHorizon } from '../server/src/storage/settle.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { startWorker, type RunningWorker } from '../server/src/worker/runner.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { segmentCatalogue, type SegmentCase } from './segments-catalogue.ts';
import { generateRetailData } from './segments-data.ts';
import type { LoadConfig, LoadReport } from './segments-load.ts';
import { clusterCpuSeconds, forkTs, freePort, machine, machineBusySeconds, median, percentile, postmasterPid, processCpuSeconds } from './system.ts';

export interface SegmentBenchOptions {
  profiles?: number;
  events?: number;
  seed?: number;
  queueProfiles?: number;
  eventsPerSecond?: number;
  seconds?: number;
  /** Most seconds phase (c) drains before the rest of the re-checks are postponed. */
  catchUpSeconds?: number;
  log?: (line: string) => void;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LOAD_CLIENT = path.join(HERE, 'segments-load.ts');

const TARGETS = { ratio: 1.5, previewMs: 2000, reevaluationsPerSecond: 5000, latencyP99Ms: 1000 };
const RUNS = 3;
/** The real-time loop's batch (worker/runner.ts); BENCH_SEGMENT_BATCH tries others. */
const DRAIN_BATCH = envCount('BENCH_SEGMENT_BATCH') ?? 500;
const LOAD_BATCH = 20;
const PROBE_PROFILES = 2000;
const PROBE_SEGMENT = { key: 'latency_probe', text: 'event("Latency Probe").last_value(state) = "on"' };
// After the load: how long the probes' transitions may take to appear before they count as missing.
const SETTLE_MS = 60_000;
// Before the load: how long what an earlier run on a kept folder left queued may take to drain.
const LEFTOVER_WAIT_MS = 300_000;
const POLL_MS = 20;
const SAMPLE_MS = 50;

const round1 = (value: number) => Math.round(value * 10) / 10;
const round3 = (value: number) => Math.round(value * 1000) / 1000;

function envCount(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

interface Cpu {
  node: number;
  postgres: number;
  machine: number;
}
function cpuMeter(pgPid: number) {
  const start: Cpu = { node: processCpuSeconds(), postgres: clusterCpuSeconds(pgPid), machine: machineBusySeconds() };
  return (clientSeconds = 0) => {
    const node = processCpuSeconds() - start.node;
    const postgres = clusterCpuSeconds(pgPid) - start.postgres;
    const busy = machineBusySeconds() - start.machine;
    return {
      nodeSeconds: round1(node),
      postgresSeconds: round1(postgres),
      clientSeconds: round1(clientSeconds),
      otherSeconds: round1(Math.max(0, busy - node - postgres - clientSeconds)),
    };
  };
}

function parse(text: string): Condition {
  const parsed = parseSegment(text);
  if (!parsed.ok) throw new Error(`segment text does not parse: ${parsed.error.message} (line ${parsed.error.line}, column ${parsed.error.column}): ${text}`);
  return parsed.condition;
}

interface Query {
  text: string;
  values: unknown[];
}

async function timeCount(db: Db, query: Query): Promise<number> {
  const started = performance.now();
  await db.query(`select count(*) from (${query.text}) as q`, query.values);
  return performance.now() - started;
}

/** Count, distinct count and a hash of the sorted ids: enough to tell two answers apart. */
async function answerOf(db: Db, query: Query): Promise<{ count: number; distinct: number; hash: string }> {
  const { rows } = await db.query<{ count: number; distinct: number; hash: string | null }>(
    `select count(*)::int as count, count(distinct x)::int as distinct, md5(string_agg(x::text, ',' order by x)) as hash
       from (${query.text}) as q(x)`,
    query.values,
  );
  const row = rows[0]!;
  return { count: row.count, distinct: row.distinct, hash: row.hash ?? '' };
}

async function explain(db: Db, query: Query): Promise<string> {
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${query.text}`, query.values);
  return rows.map((row) => row['QUERY PLAN']).join('\n');
}

interface SegmentResult {
  key: string;
  name: string;
  text: string;
  members: number;
  createComputeMs: number | null;
  compiledMs: { runs: number[]; median: number };
  handMs: { runs: number[]; median: number };
  ratio: number;
  same: boolean;
  compiled: { count: number; distinct: number; hash: string };
  hand: { count: number; distinct: number; hash: string };
}

export async function createSegments(db: Db, ws: string, cases: readonly SegmentCase[], now: Date, log: (line: string) => void) {
  const computeMs = new Map<string, number>();
  const started = performance.now();
  for (const c of cases) {
    const saved = await createSegment(db, ws, { key: c.key, name: c.name, kind: 'realtime', text: c.text }, now);
    const own = saved.computed.find((outcome) => outcome.key === c.key);
    if (!own || own.state !== 'ready') throw new Error(`segment ${c.key} did not compute: ${own?.error ?? 'no outcome'}`);
    computeMs.set(c.key, own.durationMs);
    log(`  ${c.key}: ${own.memberCount.toLocaleString('en')} members, computed in ${round1(own.durationMs)} ms`);
  }
  return { computeMs, seconds: round1((performance.now() - started) / 1000) };
}

async function benchFullEvaluation(db: Db, ws: string, cases: readonly SegmentCase[], now: Date, computeMs: Map<string, number>, log: (line: string) => void) {
  const segmentIds = segmentIdsByKey(await listLiveSegments(db, ws));
  const results: SegmentResult[] = [];
  const queries = new Map<string, { compiled: Query; hand: Query }>();
  for (const c of cases) {
    const compiled = compileSegmentQuery(parse(c.text), { workspaceId: ws, now, segmentIds });
    const hand = { text: c.handSql, values: [ws, ...(c.params?.({ segmentIds }) ?? [])] };
    queries.set(c.key, { compiled, hand });
    const compiledRuns: number[] = [];
    const handRuns: number[] = [];
    // Alternating, and which goes first alternates too, so neither always runs on a warmer cache.
    for (let run = 0; run < RUNS; run++) {
      if (run % 2 === 0) {
        compiledRuns.push(await timeCount(db, compiled));
        handRuns.push(await timeCount(db, hand));
      } else {
        handRuns.push(await timeCount(db, hand));
        compiledRuns.push(await timeCount(db, compiled));
      }
    }
    const compiledAnswer = await answerOf(db, compiled);
    const handAnswer = await answerOf(db, hand);
    const same = compiledAnswer.hash === handAnswer.hash && compiledAnswer.count === handAnswer.count && handAnswer.count === handAnswer.distinct;
    const result: SegmentResult = {
      key: c.key,
      name: c.name,
      text: c.text,
      members: compiledAnswer.count,
      createComputeMs: computeMs.get(c.key) ?? null,
      compiledMs: { runs: compiledRuns.map(round1), median: median(compiledRuns) },
      handMs: { runs: handRuns.map(round1), median: median(handRuns) },
      ratio: round3(median(compiledRuns) / Math.max(0.1, median(handRuns))),
      same,
      compiled: compiledAnswer,
      hand: handAnswer,
    };
    results.push(result);
    log(
      `  ${c.key.padEnd(24)} ${String(result.members).padStart(9)} members  compiled ${String(result.compiledMs.median).padStart(8)} ms  ` +
        `hand ${String(result.handMs.median).padStart(8)} ms  ratio ${result.ratio}${same ? '' : `  MISMATCH compiled ${compiledAnswer.count} / hand ${handAnswer.count}`}`,
    );
  }
  const geometricMean = round3(Math.exp(results.reduce((sum, r) => sum + Math.log(Math.max(r.ratio, 0.001)), 0) / results.length));
  // Where the time goes in the worst ratios.
  const worst = [...results].sort((a, b) => b.ratio - a.ratio).slice(0, 3);
  const plans: Record<string, { ratio: number; compiled: string; hand: string }> = {};
  for (const r of worst) {
    const q = queries.get(r.key)!;
    plans[r.key] = { ratio: r.ratio, compiled: await explain(db, q.compiled), hand: await explain(db, q.hand) };
  }
  return { results, geometricMean, plans, queries };
}

export interface PreviewRun {
  wallMs: number;
  method: string;
  estimatedSize: number;
  low: number | null;
  high: number | null;
  sampledProfiles: number | null;
  sampledMatches: number | null;
  sample: number;
  /** The sample's members that are members by the full computation (all of them, or a bug). */
  sampleTrue: number;
}

/**
 * (b) previewSegment (size and a sample of 20) of each segment `runs` times at `now`, against its
 * true size and members from the full computation: the estimate, its 95 % interval and whether
 * the interval holds the true size, and the time.
 */
export async function benchPreview(
  db: Db,
  ws: string,
  cases: readonly SegmentCase[],
  now: Date,
  truth: ReadonlyMap<string, { count: number; query: Query }>,
  runs: number,
  log: (line: string) => void,
  options: PreviewOptions = {},
) {
  const previews = [];
  for (const c of cases) {
    const real = truth.get(c.key);
    if (!real) continue;
    const done: PreviewRun[] = [];
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      const preview = await previewSegment(db, ws, { text: c.text, sampleSize: 20 }, now, options);
      const wallMs = round1(performance.now() - started);
      const ids = preview.sample.map((profile) => profile.id);
      const { rows } = await db.query<{ n: number }>(
        `select count(*)::int as n from (${real.query.text}) t where profile_id = any($${real.query.values.length + 1}::uuid[])`,
        [...real.query.values, ids],
      );
      done.push({
        wallMs,
        method: preview.method,
        estimatedSize: preview.estimatedSize,
        low: preview.sizeInterval?.low ?? null,
        high: preview.sizeInterval?.high ?? null,
        sampledProfiles: preview.sampledProfiles,
        sampledMatches: preview.sampledMatches,
        sample: ids.length,
        sampleTrue: rows[0]!.n,
      });
    }
    const last = done.at(-1)!;
    const covered = last.low !== null && last.high !== null && last.low <= real.count && real.count <= last.high;
    const medianMs = median(done.map((r) => r.wallMs));
    const maxMs = Math.max(...done.map((r) => r.wallMs));
    const error = real.count === 0 ? null : round3((last.estimatedSize - real.count) / real.count);
    previews.push({ key: c.key, trueCount: real.count, covered, relativeError: error, medianMs, maxMs, met: maxMs < TARGETS.previewMs, runs: done });
    log(
      `  ${c.key.padEnd(24)} true ${String(real.count).padStart(8)}  ${last.method.padEnd(7)} ${String(last.estimatedSize).padStart(8)} ` +
        `[${last.low ?? '?'}, ${last.high ?? '?'}]${covered ? '' : ' MISSES'}  n ${last.sampledProfiles ?? '-'} x ${last.sampledMatches ?? '-'}  ` +
        `sample ${last.sampleTrue}/${last.sample}  ${done.map((r) => `${r.wallMs} ms`).join(', ')}`,
    );
  }
  return previews;
}

/**
 * Queues a fixed random sample of profiles and drains with the real-time loop's function until
 * nothing is left to do at `now`. Creating time-dependent segments gives every profile they could
 * concern a re-check due at once (compute.ts), and each drain takes queued profiles and due
 * re-checks together, so this measures both; it stops after `budgetSeconds` and then postpones
 * what is left by a day, so the latency phase starts from a caught-up worker.
 */
async function benchIncremental(db: Db, ws: string, pgPid: number, queueProfiles: number, budgetSeconds: number, log: (line: string) => void) {
  const { rowCount } = await db.query(
    `insert into segment_queue (workspace_id, profile_id, queued_at)
     select $1, id, now() from profiles where workspace_id = $1 and merged_into is null order by md5(id::text) limit $2`,
    [ws, queueProfiles],
  );
  const queued = rowCount ?? 0;
  const now = new Date();
  const { rows: due } = await db.query<{ n: number }>('select count(*)::int as n from segment_rechecks where workspace_id = $1 and due_at <= $2', [ws, now]);
  const dueRechecks = due[0]!.n;
  await db.query('analyze segment_queue');
  await db.query('analyze segment_rechecks');
  const { rows: before } = await db.query<{ n: number }>('select count(*)::int as n from segment_transitions where workspace_id = $1', [ws]);
  log(`  ${queued.toLocaleString('en')} profiles queued and ${dueRechecks.toLocaleString('en')} re-checks due; draining in batches of ${DRAIN_BATCH} …`);
  const cpu = cpuMeter(pgPid);
  const started = performance.now();
  let evaluated = 0;
  let batches = 0;
  let lastLog = started;
  while (performance.now() - started < budgetSeconds * 1000) {
    // As the worker drains (parallel parts); BENCH_SEGMENT_PARALLEL=0: one batch at a time.
    const taken = await drainSegmentQueue(db, { batchSize: DRAIN_BATCH, now, parallel: process.env.BENCH_SEGMENT_PARALLEL !== '0' });
    if (taken === 0) break;
    evaluated += taken;
    batches++;
    if (performance.now() - lastLog > 30_000) {
      lastLog = performance.now();
      log(`    ${evaluated.toLocaleString('en')} evaluated, ${Math.round(evaluated / ((lastLog - started) / 1000)).toLocaleString('en')}/s`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const cpuSplit = cpu();
  const { rows: after } = await db.query<{ n: number; queue: number; due: number }>(
    `select (select count(*)::int from segment_transitions where workspace_id = $1) as n,
            (select count(*)::int from segment_queue where workspace_id = $1) as queue,
            (select count(*)::int from segment_rechecks where workspace_id = $1 and due_at <= $2) as due`,
    [ws, now],
  );
  const left = { queued: after[0]!.queue, dueRechecks: after[0]!.due };
  if (left.dueRechecks > 0) {
    await db.query(`update segment_rechecks set due_at = due_at + interval '1 day' where workspace_id = $1 and due_at <= $2`, [ws, now]);
  }
  const perSecond = Math.round(evaluated / seconds);
  return {
    queued,
    dueRechecksAtStart: dueRechecks,
    evaluated,
    batches,
    batchSize: DRAIN_BATCH,
    seconds: round1(seconds),
    budgetSeconds,
    leftAfterBudget: left,
    reevaluationsPerSecond: perSecond,
    target: TARGETS.reevaluationsPerSecond,
    met: perSecond >= TARGETS.reevaluationsPerSecond,
    transitionsRecorded: after[0]!.n - before[0]!.n,
    cpu: cpuSplit,
    microsPerProfile: Math.round(((cpuSplit.nodeSeconds + cpuSplit.postgresSeconds) / Math.max(1, evaluated)) * 1e6),
  };
}

interface Observed {
  id: number;
  profileId: string;
  transition: 'entered' | 'exited';
  /** Epoch ms of the poll that first saw it (its commit was at or before this). */
  seenAt: number;
  at: number;
}

/**
 * Watches the probe segment's transitions after `afterId`, polling every POLL_MS on a connection of
 * its own. Ids are drawn at insert and visible at commit, and the drain's parts commit out of id
 * order: a watcher that moved past the largest id it saw missed smaller ones committed a moment
 * later (about 1 % of the probes at 2,000 events/s, counted as "wrong direction"). So it re-reads
 * everything after the last *settled* id (storage/settle.ts: no transaction that could still
 * commit a smaller one is running) and keeps the ids it has seen beyond it.
 */
async function watchTransitions(url: string, ws: string, segmentId: string, afterId: number) {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-watch' });
  await client.connect();
  const sequence = `pg_get_serial_sequence('segment_transitions', 'id')::regclass`;
  const seen: Observed[] = [];
  const seenIds = new Set<number>();
  let settledId = afterId;
  let horizon = await readSequenceHorizon(client, sequence);
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const pollStart = Date.now();
      // Checked before the read: once passed, every transition up to the horizon is committed, so
      // this read (still from the old settled id) sees all of them and the settled id may move.
      const passed = await horizonPassed(client, horizon);
      const { rows } = await client.query<{ id: string; profile_id: string; transition: 'entered' | 'exited'; at: Date }>(
        `select id, profile_id, transition, at from segment_transitions where workspace_id = $1 and segment_id = $2 and id > $3 order by id`,
        [ws, segmentId, settledId],
      );
      for (const row of rows) {
        const id = Number(row.id);
        if (seenIds.has(id)) continue;
        seenIds.add(id);
        seen.push({ id, profileId: row.profile_id, transition: row.transition, seenAt: pollStart, at: row.at.getTime() });
      }
      if (passed) {
        settledId = Math.max(settledId, horizon.last);
        for (const id of seenIds) if (id <= settledId) seenIds.delete(id);
        horizon = await readSequenceHorizon(client, sequence);
      }
      const wait = POLL_MS - (Date.now() - pollStart);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();
  return {
    seen,
    async stop() {
      stopped = true;
      await loop;
      await client.end();
    },
  };
}

/**
 * Waits (up to LEFTOVER_WAIT_MS) until the workspace's identity and segment queues are empty, so
 * what an earlier run on a kept folder left is not drained, and its transitions not recorded,
 * during this run. Returns what was queued at the start and what was still queued at the end.
 */
async function waitForEmptyQueues(db: Db, ws: string, log: (line: string) => void) {
  const count = async () => {
    const { rows } = await db.query<{ identity: number; segment: number }>(
      `select (select count(*)::int from identity_queue where workspace_id = $1) as identity,
              (select count(*)::int from segment_queue where workspace_id = $1) as segment`,
      [ws],
    );
    return rows[0]!;
  };
  const atStart = await count();
  if (atStart.identity + atStart.segment === 0) return { atStart, afterWait: atStart, waitedSeconds: 0 };
  log(`  left queued by an earlier run: ${atStart.identity} identity rows, ${atStart.segment} profiles; draining them first …`);
  const started = Date.now();
  const worker = await startWorker({ db, concurrency: loadConfig({}).workerConcurrency, segmentDigests: loadConfig({ TOUCHPOINT_SEGMENT_DIGESTS: process.env.TOUCHPOINT_SEGMENT_DIGESTS }).segmentDigests, logger: () => undefined });
  let left = atStart;
  try {
    while (left.identity + left.segment > 0 && Date.now() - started < LEFTOVER_WAIT_MS) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      left = await count();
    }
  } finally {
    await worker.stop();
  }
  if (left.identity + left.segment > 0) log(`  still queued after ${LEFTOVER_WAIT_MS / 1000} s: ${JSON.stringify(left)}`);
  return { atStart, afterWait: left, waitedSeconds: round1((Date.now() - started) / 1000) };
}

/** The probe segment's last transition so far (the watcher starts after it) and the probe profiles in it now. */
async function probeFence(db: Db, ws: string, segmentId: string, probeProfileIds: string[]) {
  const { rows: last } = await db.query<{ id: string | null }>('select max(id)::text as id from segment_transitions where workspace_id = $1 and segment_id = $2', [
    ws,
    segmentId,
  ]);
  const { rows: members } = await db.query<{ profile_id: string }>(
    'select profile_id from segment_memberships where workspace_id = $1 and segment_id = $2 and profile_id = any($3::uuid[])',
    [ws, segmentId, probeProfileIds],
  );
  return { lastTransitionId: Number(last[0]!.id ?? 0), members: new Set(members.map((m) => m.profile_id)) };
}

/**
 * What PostgreSQL is busy with: samples the active statements of the other connections every
 * SAMPLE_MS; each statement's share of the samples approximates its share of the database's time.
 */
async function sampleActivity(url: string) {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-sample' });
  await client.connect();
  const tally = new Map<string, number>();
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await client.query<{ statement: string }>(
        `select coalesce(wait_event_type || ':' || wait_event || ' ', '') || regexp_replace(left(query, 160), '\\s+', ' ', 'g') as statement
           from pg_stat_activity
          where state = 'active' and datname = current_database() and application_name not in ('bench-sample', 'bench-watch')`,
      );
      samples++;
      for (const row of rows) tally.set(row.statement, (tally.get(row.statement) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await client.end();
      const busy = [...tally.values()].reduce((sum, n) => sum + n, 0);
      return {
        samples,
        everyMs: SAMPLE_MS,
        averageActiveConnections: round1(busy / Math.max(1, samples)),
        top: [...tally]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 15)
          .map(([statement, n]) => ({ share: round3(n / Math.max(1, busy)), statement })),
      };
    },
  };
}

async function runLoadChild(config: LoadConfig): Promise<LoadReport> {
  const child = forkTs(LOAD_CLIENT, ['child']);
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', (code) => reject(new Error(`the load client exited (code ${code}) before reporting`))),
  );
  const message = () => Promise.race([new Promise<unknown>((resolve) => child.once('message', resolve)), exited]);
  child.send(config);
  if ((await message()) !== 'ready') throw new Error('the load client did not start');
  child.send('go');
  const answer = (await message()) as { report?: LoadReport; error?: string };
  if (!answer.report) throw new Error(`the load client failed: ${answer.error}`);
  return answer.report;
}

export async function benchRealtime(
  db: Db,
  url: string,
  ws: string,
  writeKey: string,
  pgPid: number,
  options: { eventsPerSecond: number; seconds: number },
  log: (line: string) => void,
) {
  const config = loadConfig({});
  // A kept data folder (bench/segments-kept.ts) may hold the probe segment from an earlier run.
  const { rows: existing } = await db.query<{ id: string }>('select id from segments where workspace_id = $1 and key = $2', [ws, PROBE_SEGMENT.key]);
  const probe = existing[0]
    ? { segment: { id: existing[0].id } }
    : await createSegment(db, ws, { key: PROBE_SEGMENT.key, name: 'Latency probe', kind: 'realtime', text: PROBE_SEGMENT.text }, new Date());
  const { rows: members } = await db.query<{ value: string; profile_id: string }>(
    `select value, profile_id from profile_identifiers where workspace_id = $1 and type = 'user_id' and unbound_at is null
      order by md5(value) limit 100000`,
    [ws],
  );
  if (members.length < PROBE_PROFILES + 100) throw new Error(`too few members for the load: ${members.length}`);
  const profileOf = new Map(members.map((m) => [m.value, m.profile_id]));
  const probeUserIds = members.slice(0, PROBE_PROFILES).map((m) => m.value);
  const userIds = members.slice(PROBE_PROFILES).map((m) => m.value);
  // A kept folder holds earlier runs: only this run's probe transitions may be matched with its
  // probes. What an earlier run left queued is drained first (so none of its transitions lands in
  // this run), the watcher starts after the last transition recorded so far, and each probe profile
  // starts from its membership now (one still in the probe segment gets "off" first).
  const leftAtStart = await waitForEmptyQueues(db, ws, log);
  const fence = await probeFence(db, ws, probe.segment.id, members.slice(0, PROBE_PROFILES).map((m) => m.profile_id));
  const probeUserIdsOn = probeUserIds.filter((userId) => fence.members.has(profileOf.get(userId)!));

  let app: FastifyInstance | undefined;
  let worker: RunningWorker | undefined;
  const problems = { count: 0, first: null as string | null };
  let stopping = false;
  const backlog = { identityMax: 0, segmentMax: 0, samples: [] as Array<{ second: number; identity: number; segment: number; poolWaiting: number }> };
  try {
    // As `touchpoint start` wires them (ingest/load.ts): the worker steps back only if ingestion saturates.
    const ingestLoad = createIngestLoad();
    app = await buildServer({ db, verifyAdmin: () => false, logLevel: false, ingestLoad });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    worker = await startWorker({
      db,
      concurrency: config.workerConcurrency,
      // BENCH_INGEST_STEP_BACK=0: the worker does not see the API's load (A/B of the step-back).
      ingestLoad: process.env.BENCH_INGEST_STEP_BACK === '0' ? undefined : ingestLoad,
      // The worker a server starts with TOUCHPOINT_SEGMENT_DIGESTS=on (the rest of the config is the defaults).
      segmentDigests: loadConfig({ TOUCHPOINT_SEGMENT_DIGESTS: process.env.TOUCHPOINT_SEGMENT_DIGESTS }).segmentDigests,
      logger: (level, message) => {
        if (stopping || (level !== 'error' && level !== 'warning')) return;
        problems.count++;
        problems.first ??= `${level}: ${message}`;
      },
    });
    // The segment stage's own lag: profile queued → its batch committed (segments/drain-metrics.ts).
    const stageLags: number[] = [];
    const batchMs: number[] = [];
    let stageProfiles = 0;
    // Where the batches' time went: each step's total over the run (segments/drain-metrics.ts).
    const stepTotals = new Map<string, number>();
    let changedWhileWaiting = 0;
    let changedWhileEvaluated = 0;
    const stopStage = onDrainBatch((report) => {
      if (report.workspaceId !== ws) return;
      stageLags.push(...report.queueLagMs);
      batchMs.push(report.batchMs);
      stageProfiles += report.queued + report.rechecks;
      for (const [step, ms] of Object.entries(report.stepsMs ?? {})) stepTotals.set(step, (stepTotals.get(step) ?? 0) + ms);
      changedWhileWaiting += report.changedWhileWaiting ?? 0;
      changedWhileEvaluated += report.changedWhileEvaluated ?? 0;
    });
    // The server, the worker and the drain share this process's event loop: how late it runs.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const watcher = await watchTransitions(url, ws, probe.segment.id, fence.lastTransitionId);
    const activity = await sampleActivity(url);
    const started = Date.now();
    const sampler = setInterval(() => {
      db.query<{ identity: number; segment: number }>(
        `select (select coalesce(sum(events), 0)::int from identity_queue where workspace_id = $1) as identity,
                (select count(*)::int from segment_queue where workspace_id = $1) as segment`,
        [ws],
      ).then(
        ({ rows }) => {
          const row = rows[0]!;
          backlog.identityMax = Math.max(backlog.identityMax, row.identity);
          backlog.segmentMax = Math.max(backlog.segmentMax, row.segment);
          backlog.samples.push({ second: Math.round((Date.now() - started) / 1000), identity: row.identity, segment: row.segment, poolWaiting: db.waitingCount });
        },
        () => undefined,
      );
    }, 1000);
    log(`  ${options.eventsPerSecond.toLocaleString('en')} events/s for ${options.seconds} s through ${baseUrl}/v1/batch (${LOAD_BATCH} per request, one probe each) …`);
    const cpu = cpuMeter(pgPid);
    const report = await runLoadChild({
      url: `${baseUrl}/v1/batch`,
      writeKey,
      runTag: crypto.randomBytes(4).toString('hex'),
      eventsPerSecond: options.eventsPerSecond,
      seconds: options.seconds,
      batchSize: LOAD_BATCH,
      userIds,
      probeUserIds,
      probeUserIdsOn,
    });
    const loadCpu = cpu(report.cpuSeconds);
    const databaseActivity = await activity.stop();
    // Wait for every acknowledged probe's transition (or the settle time).
    const acknowledged = report.probes.filter((p) => p.ackAt !== null).length;
    const settleStarted = Date.now();
    while (watcher.seen.length < acknowledged && Date.now() - settleStarted < SETTLE_MS) await new Promise((resolve) => setTimeout(resolve, 100));
    const settleSeconds = round1((Date.now() - settleStarted) / 1000);
    clearInterval(sampler);
    await watcher.stop();
    stopStage();
    loopDelay.disable();
    stageLags.sort((a, b) => a - b);
    batchMs.sort((a, b) => a - b);

    // Match each profile's probes, in order, with its transitions, in order: on → entered, off → exited.
    const transitionsByProfile = new Map<string, Observed[]>();
    for (const seen of watcher.seen) {
      const list = transitionsByProfile.get(seen.profileId) ?? [];
      list.push(seen);
      transitionsByProfile.set(seen.profileId, list);
    }
    const fromStored: number[] = [];
    const fromSent: number[] = [];
    let unmatched = 0;
    let wrongDirection = 0;
    // A few probe profiles whose transitions came in another order than their probes, as seen.
    const wrongSamples: Array<Record<string, unknown>> = [];
    const probesByProfile = new Map<string, typeof report.probes>();
    for (const p of report.probes) {
      const profileId = profileOf.get(p.userId)!;
      const list = probesByProfile.get(profileId) ?? [];
      list.push(p);
      probesByProfile.set(profileId, list);
    }
    for (const [profileId, probes] of probesByProfile) {
      const transitions = (transitionsByProfile.get(profileId) ?? []).sort((a, b) => a.id - b.id);
      probes.forEach((p, index) => {
        const t = transitions[index];
        if (!t || p.ackAt === null) {
          unmatched++;
          return;
        }
        if ((p.state === 'on') !== (t.transition === 'entered')) {
          wrongDirection++;
          if (wrongSamples.length < 3) {
            wrongSamples.push({
              profileId,
              startedOn: fence.members.has(profileId),
              probes: probes.map((q) => ({ state: q.state, sentAt: q.sentAt, ackAt: q.ackAt })),
              transitions: transitions.map((x) => ({ transition: x.transition, seenAt: x.seenAt, at: x.at })),
            });
          }
        }
        fromStored.push(Math.max(0, t.seenAt - p.ackAt));
        fromSent.push(t.seenAt - p.sentAt);
      });
    }
    fromStored.sort((a, b) => a - b);
    fromSent.sort((a, b) => a - b);
    const stats = (values: number[]) => ({
      p50: percentile(values, 50),
      p90: percentile(values, 90),
      p99: percentile(values, 99),
      max: percentile(values, 100),
    });
    const wholeSeconds = report.sentPerSecond.slice(0, Math.floor(report.seconds));
    return {
      eventsPerSecondTarget: options.eventsPerSecond,
      seconds: round1(report.seconds),
      eventsSent: report.events,
      accepted: report.accepted,
      rejected: report.rejected,
      failures: report.failures,
      firstFailure: report.firstFailure,
      medianEventsSentPerSecond: median(wholeSeconds.length ? wholeSeconds : report.sentPerSecond),
      lateRequests: report.lateRequests,
      requestLatencyMs: stats(report.latenciesMs),
      leftAtStart,
      probesStartingOn: probeUserIdsOn.length,
      probes: report.probes.length,
      probesMatched: fromStored.length,
      probesUnmatched: unmatched,
      wrongDirection,
      wrongSamples,
      settleSeconds,
      latencyMs: { storedToMembership: stats(fromStored), sentToMembership: stats(fromSent) },
      segmentStage: {
        what: 'profile queued (segment_queue.queued_at) → drain batch committed, every queued profile of the run',
        profiles: stageProfiles,
        queuedProfiles: stageLags.length,
        batches: batchMs.length,
        lagMs: stats(stageLags.map(Math.round)),
        batchMs: stats(batchMs.map(Math.round)),
        // Queued profiles changed again before their batch took them, and while it evaluated them (evaluated again).
        changedWhileWaiting,
        changedWhileEvaluated,
        // Summed over the run's batches (the parts run at once, so the sum can exceed the run's length).
        stepsMsPerBatch: Object.fromEntries(
          [...stepTotals].sort((a, b) => b[1] - a[1]).map(([step, ms]) => [step, round1(ms / Math.max(1, batchMs.length))]),
        ),
      },
      eventLoopDelayMs: {
        p50: round1(loopDelay.percentile(50) / 1e6),
        p99: round1(loopDelay.percentile(99) / 1e6),
        max: round1(loopDelay.max / 1e6),
      },
      target: `p99 < ${TARGETS.latencyP99Ms} ms`,
      met: unmatched === 0 && percentile(fromStored, 99) < TARGETS.latencyP99Ms,
      backlog: { identityQueueMax: backlog.identityMax, segmentQueueMax: backlog.segmentMax, perSecond: backlog.samples },
      cpu: loadCpu,
      databaseActivity,
      workerProblems: problems,
      pollMs: POLL_MS,
    };
  } finally {
    stopping = true;
    await worker?.stop().catch(() => undefined);
    await app?.close().catch(() => undefined);
  }
}

export async function benchSegments(options: SegmentBenchOptions = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const profiles = options.profiles ?? envCount('BENCH_SEGMENT_PROFILES') ?? 1_000_000;
  const events = options.events ?? envCount('BENCH_SEGMENT_EVENTS') ?? 20_000_000;
  const seed = options.seed ?? envCount('BENCH_SEGMENT_SEED') ?? 20261123;
  const queueProfiles = Math.min(profiles, options.queueProfiles ?? envCount('BENCH_SEGMENT_QUEUE') ?? 50_000);
  const eventsPerSecond = options.eventsPerSecond ?? envCount('BENCH_SEGMENT_RATE') ?? 2000;
  const seconds = options.seconds ?? envCount('BENCH_SEGMENT_SECONDS') ?? 60;
  const catchUpSeconds = options.catchUpSeconds ?? envCount('BENCH_SEGMENT_CATCHUP_SECONDS') ?? 600;
  const startedAt = new Date();
  const host = machine();

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-segments-'));
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const pgPid = postmasterPid(path.join(dataDir, 'pg'));
  // The same pool size as `touchpoint start`.
  const db = createPool(server.url);
  try {
    await migrate(db);
    await runWorkerMigrations({ pgPool: db });
    const { rows: versionRows } = await db.query<{ version: string }>('select version()');
    const { rows: settings } = await db.query<{ name: string; setting: string; unit: string | null }>(
      `select name, setting, unit from pg_settings
        where name in ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'synchronous_commit', 'fsync', 'max_wal_size', 'effective_cache_size')`,
    );
    const workspace = await createWorkspace(db, { slug: 'bench-segments', name: 'Bench retail segments', timeZone: 'Asia/Shanghai' });
    const ws = workspace.id;

    log(`Generating ${profiles.toLocaleString('en')} profiles and ${events.toLocaleString('en')} events (seed ${seed}) …`);
    // Bulk-load setting for the generation only (fewer checkpoints while 20M rows are written);
    // everything measured afterwards runs with the server's defaults again.
    await db.query(`alter system set max_wal_size = '16GB'`);
    await db.query('select pg_reload_conf()');
    const data = await generateRetailData(db, { workspaceId: ws, profiles, events, seed, log });
    await db.query('alter system reset max_wal_size');
    await db.query('select pg_reload_conf()');
    await db.query('checkpoint');
    const { rows: sizes } = await db.query<{ database: string; events: string }>(
      `select pg_size_pretty(pg_database_size(current_database())) as database,
              pg_size_pretty((select sum(pg_total_relation_size(inhrelid)) from pg_inherits where inhparent = 'events'::regclass)) as events`,
    );

    const now = new Date();
    const cases = segmentCatalogue(now);
    log('Creating the 20 segments as real-time segments (each computed in full) …');
    const created = await createSegments(db, ws, cases, now, log);

    log(`(a) Full evaluation, compiled vs hand-written SQL, ${RUNS} runs each, alternating …`);
    const full = await benchFullEvaluation(db, ws, cases, now, created.computeMs, log);
    const mismatches = full.results.filter((r) => !r.same).map((r) => ({ key: r.key, compiled: r.compiled, hand: r.hand }));
    log(`    geometric mean ratio ${full.geometricMean}${mismatches.length ? `; ${mismatches.length} MISMATCHES` : '; every answer identical'}`);

    log('(b) Preview (size and a sample of 20) of the 20 segments, against their full computation …');
    const truth = new Map(full.results.map((r) => [r.key, { count: r.members, query: full.queries.get(r.key)!.compiled }]));
    const previews = await benchPreview(db, ws, cases, now, truth, RUNS, log);

    log('(c) Incremental re-evaluation throughput …');
    const incremental = await benchIncremental(db, ws, pgPid, queueProfiles, catchUpSeconds, log);
    log(`    ${incremental.reevaluationsPerSecond.toLocaleString('en')} profile re-evaluations/s`);

    log('(d) Real-time latency under load …');
    const realtime = await benchRealtime(db, server.url, ws, data.sources.app.writeKey, pgPid, { eventsPerSecond, seconds }, log);

    const generationMinutes = round1(data.seconds / 60);
    const summary = [
      `data: ${profiles.toLocaleString('en')} profiles, ${events.toLocaleString('en')} events, ${data.identifiers.toLocaleString('en')} identifiers, ` +
        `${data.traits.toLocaleString('en')} traits, ${data.consents.toLocaleString('en')} consents generated in ${data.seconds} s (${generationMinutes} min; ` +
        `database ${sizes[0]!.database}, events ${sizes[0]!.events})`,
      `create 20 real-time segments (parse, check, full computation writing memberships): ${created.seconds} s`,
      `${'segment'.padEnd(24)} ${'members'.padStart(9)} ${'compiled'.padStart(9)} ${'hand'.padStart(9)} ${'ratio'.padStart(6)}  same`,
      ...full.results.map(
        (r) =>
          `${r.key.padEnd(24)} ${String(r.members).padStart(9)} ${String(r.compiledMs.median).padStart(9)} ${String(r.handMs.median).padStart(9)} ` +
          `${String(r.ratio).padStart(6)}  ${r.same ? 'yes' : `NO (hand ${r.hand.count})`}`,
      ),
      `(a) full evaluation: geometric mean of compiled/hand ratios ${full.geometricMean} (target ≤ ${TARGETS.ratio}: ${full.geometricMean <= TARGETS.ratio ? 'met' : 'MISSED'}); ` +
        `worst ${[...full.results].sort((a, b) => b.ratio - a.ratio).slice(0, 3).map((r) => `${r.key} ${r.ratio}`).join(', ')}; ` +
        `${mismatches.length === 0 ? 'compiled and hand-written SQL returned the same profiles for all 20' : `${mismatches.length} MISMATCHES: ${mismatches.map((m) => m.key).join(', ')}`}`,
      `(b) preview: ${previews.map((p) => `${p.key} ${p.runs.at(-1)!.estimatedSize}/${p.trueCount}${p.covered ? '' : ' (outside its interval)'} ${p.medianMs} ms`).join(', ')}; ` +
        `${previews.filter((p) => p.covered).length}/${previews.length} intervals hold the true size; max ${Math.max(...previews.map((p) => p.maxMs))} ms ` +
        `(target < ${TARGETS.previewMs} ms: ${previews.every((p) => p.met) ? 'met' : 'MISSED'})`,
      `(c) incremental: ${incremental.evaluated.toLocaleString('en')} profiles (${incremental.queued.toLocaleString('en')} queued, the rest re-checks due ` +
        `after creating the segments${incremental.leftAfterBudget.dueRechecks ? `; ${incremental.leftAfterBudget.dueRechecks.toLocaleString('en')} left after the ${incremental.budgetSeconds} s budget, postponed` : ''}) × 20 segments in ${incremental.seconds} s = ` +
        `${incremental.reevaluationsPerSecond.toLocaleString('en')} profile re-evaluations/s (target ≥ ${TARGETS.reevaluationsPerSecond.toLocaleString('en')}: ` +
        `${incremental.met ? 'met' : 'MISSED'}); CPU node ${incremental.cpu.nodeSeconds} s, PostgreSQL ${incremental.cpu.postgresSeconds} s, other ${incremental.cpu.otherSeconds} s`,
      `(d) real-time: ${realtime.eventsSent.toLocaleString('en')} events in ${realtime.seconds} s (median ${realtime.medianEventsSentPerSecond} events/s sent, ` +
        `${realtime.accepted.toLocaleString('en')} accepted); ${realtime.probesMatched}/${realtime.probes} probes seen; stored → membership ` +
        `p50 ${realtime.latencyMs.storedToMembership.p50} ms, p99 ${realtime.latencyMs.storedToMembership.p99} ms, max ${realtime.latencyMs.storedToMembership.max} ms ` +
        `(target p99 < ${TARGETS.latencyP99Ms} ms: ${realtime.met ? 'met' : 'MISSED'}); segment stage alone (queued → committed) ` +
        `p50 ${realtime.segmentStage.lagMs.p50} ms, p99 ${realtime.segmentStage.lagMs.p99} ms; backlog max identity ${realtime.backlog.identityQueueMax}, segments ${realtime.backlog.segmentQueueMax}`,
    ];
    return {
      benchmark: 'segments',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      summary,
      machine: {
        ...host,
        postgres: versionRows[0]?.version ?? 'unknown',
        postgresSettings: Object.fromEntries(
          settings.map((s) => [s.name, s.unit === '8kB' ? `${(Number(s.setting) * 8) / 1024} MB` : `${s.setting}${s.unit ? ` ${s.unit}` : ''}`]),
        ),
      },
      config: { profiles, events, seed, queueProfiles, catchUpSeconds, eventsPerSecond, seconds, drainBatch: DRAIN_BATCH, runs: RUNS },
      data: { ...data, sources: Object.keys(data.sources), sizes: sizes[0], bulkLoadSetting: 'max_wal_size 16GB during generation, reset after' },
      createSegments: { seconds: created.seconds, computeMs: Object.fromEntries(created.computeMs) },
      fullEvaluation: {
        segments: full.results,
        geometricMeanRatio: full.geometricMean,
        target: `≤ ${TARGETS.ratio}`,
        met: full.geometricMean <= TARGETS.ratio,
        mismatches,
        worstPlans: full.plans,
      },
      preview: previews,
      incremental,
      realtime,
    };
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const result = await benchSegments();
  console.log((result.summary as string[]).join('\n'));
}
