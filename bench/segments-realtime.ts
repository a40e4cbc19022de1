/**
 * Real-time segment throughput: profile re-evaluations per second of the worker's drain
 * (`drainSegmentQueue`: take a batch off segment_queue, load snapshots, evaluate every active
 * real-time segment in dependency order, record transitions, write re-checks), over the retail
 * data of bench/segments-data.ts and the 20 segments of bench/segments-catalogue.ts made real-time.
 *
 * Two passes over every profile, each timed: the first enters each profile into its segments
 * (many transitions, as after a bulk import), the second re-evaluates with nothing changed (the
 * steady state: a profile queued by an event that moves no membership). Target ≥ 5,000/s.
 *
 * Standalone: `node --import tsx bench/segments-realtime.ts` (embedded PostgreSQL in a temporary
 * folder). Sizes: BENCH_RT_PROFILES (10,000), BENCH_RT_EVENTS (200,000), BENCH_RT_BATCH (500).
 * `measureRealtimeDrain` runs the measurement on a database another benchmark already filled.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseSegment } from '../server/src/segments/language/parse.ts';
import { drainSegmentQueue } from '../server/src/segments/realtime.ts';
import { createPool, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { segmentCatalogue } from './segments-catalogue.ts';
import { generateRetailData } from './segments-data.ts';
import { clusterCpuSeconds, freePort, machine, postmasterPid, processCpuSeconds } from './system.ts';

export interface RealtimePass {
  profiles: number;
  seconds: number;
  reevaluationsPerSecond: number;
  transitions: number;
  /** CPU seconds of this process and (when its postmaster is known) of PostgreSQL during the pass. */
  nodeCpuSeconds: number;
  postgresCpuSeconds: number | null;
  /** Profiles per CPU second of both: what the pass would reach on an otherwise idle machine with a core each. */
  reevaluationsPerCpuSecond: number | null;
}

export interface RealtimeDrainOptions {
  /** The evaluation clock (the data's `now`). */
  now: Date;
  batchSize?: number;
  /** The PostgreSQL postmaster's pid, to count the database's CPU time too. */
  postmasterPid?: number;
  log?: (line: string) => void;
}

const TARGET_PER_SECOND = 5000;

/**
 * Inserts the catalogue's 20 segments into `workspaceId` as active, ready real-time segments (a
 * key already there is left alone). Returns their keys.
 */
export async function installRealtimeCatalogue(db: Db, workspaceId: string, now: Date): Promise<string[]> {
  const keys: string[] = [];
  for (const segment of segmentCatalogue(now)) {
    const parsed = parseSegment(segment.text);
    if (!parsed.ok) throw new Error(`catalogue segment ${segment.key} does not parse: ${parsed.error.message}`);
    await db.query(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, $2, $3, 'realtime', $4, 'ready')
       on conflict (workspace_id, key) do nothing`,
      [workspaceId, segment.key, segment.name, JSON.stringify(parsed.condition)],
    );
    keys.push(segment.key);
  }
  return keys;
}

/**
 * Queues every live profile of the workspace and times the drain until the queue is empty: one
 * pass. The workspace's real-time segments must be in place (installRealtimeCatalogue).
 */
export async function measureRealtimePass(db: Db, workspaceId: string, options: RealtimeDrainOptions): Promise<RealtimePass> {
  const { rows: queued } = await db.query<{ count: number }>(
    `with q as (insert into segment_queue (workspace_id, profile_id)
       select workspace_id, id from profiles where workspace_id = $1 and merged_into is null on conflict do nothing returning 1)
     select count(*)::int as count from q`,
    [workspaceId],
  );
  await db.query('vacuum analyze segment_queue');
  const { rows: before } = await db.query<{ id: number | null }>('select max(id) as id from segment_transitions where workspace_id = $1', [workspaceId]);
  const started = performance.now();
  const nodeCpu = processCpuSeconds();
  const pgCpu = options.postmasterPid ? clusterCpuSeconds(options.postmasterPid) : null;
  let profiles = 0;
  for (;;) {
    const taken = await drainSegmentQueue(db, { now: options.now, batchSize: options.batchSize });
    if (taken === 0) break;
    profiles += taken;
  }
  const seconds = (performance.now() - started) / 1000;
  const nodeCpuSeconds = processCpuSeconds() - nodeCpu;
  const postgresCpuSeconds = pgCpu === null ? null : clusterCpuSeconds(options.postmasterPid!) - pgCpu;
  const { rows: after } = await db.query<{ count: number }>('select count(*)::int as count from segment_transitions where workspace_id = $1 and id > $2', [
    workspaceId,
    before[0]?.id ?? 0,
  ]);
  if (profiles < queued[0]!.count) throw new Error(`queued ${queued[0]!.count} profiles but the drain took ${profiles}`);
  const round2 = (value: number) => Math.round(value * 100) / 100;
  return {
    profiles,
    seconds: round2(seconds),
    reevaluationsPerSecond: Math.round(profiles / seconds),
    transitions: after[0]!.count,
    nodeCpuSeconds: round2(nodeCpuSeconds),
    postgresCpuSeconds: postgresCpuSeconds === null ? null : round2(postgresCpuSeconds),
    reevaluationsPerCpuSecond: postgresCpuSeconds === null ? null : Math.round(profiles / (nodeCpuSeconds + postgresCpuSeconds)),
  };
}

/** Both passes (initial, then steady) on a database with data and segments in place. */
export async function measureRealtimeDrain(db: Db, workspaceId: string, options: RealtimeDrainOptions): Promise<{ initial: RealtimePass; steady: RealtimePass }> {
  const log = options.log ?? (() => undefined);
  const initial = await measureRealtimePass(db, workspaceId, options);
  const cpu = (pass: RealtimePass) => `CPU node ${pass.nodeCpuSeconds} s, PostgreSQL ${pass.postgresCpuSeconds ?? '?'} s`;
  log(`  initial pass: ${initial.profiles} profiles in ${initial.seconds} s = ${initial.reevaluationsPerSecond}/s, ${initial.transitions} transitions; ${cpu(initial)}`);
  await db.query('vacuum analyze segment_memberships, segment_rechecks, segment_transitions');
  const steady = await measureRealtimePass(db, workspaceId, options);
  log(`  steady pass: ${steady.profiles} profiles in ${steady.seconds} s = ${steady.reevaluationsPerSecond}/s, ${steady.transitions} transitions; ${cpu(steady)}`);
  return { initial, steady };
}

function envCount(name: string): number | undefined {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? undefined : Number(raw);
}

/** The standalone benchmark: a fresh embedded database, the retail data, the catalogue, both passes. */
export async function benchSegmentsRealtime(
  options: { profiles?: number; events?: number; batchSize?: number; log?: (line: string) => void } = {},
): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const profiles = options.profiles ?? envCount('BENCH_RT_PROFILES') ?? 10_000;
  const events = options.events ?? envCount('BENCH_RT_EVENTS') ?? 200_000;
  const batchSize = options.batchSize ?? envCount('BENCH_RT_BATCH') ?? 500;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-segments-rt-'));
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url, 10);
  try {
    await migrate(db);
    const workspace = await createWorkspace(db, { slug: 'bench-rt', name: 'Real-time segments bench' });
    const now = new Date(Math.floor(Date.now() / 60_000) * 60_000);
    log(`Generating ${profiles} profiles, ${events} events`);
    await generateRetailData(db, { workspaceId: workspace.id, profiles, events, now, log });
    const keys = await installRealtimeCatalogue(db, workspace.id, now);
    log(`${keys.length} real-time segments; batch ${batchSize}`);
    const result = await measureRealtimeDrain(db, workspace.id, { now, batchSize, log, postmasterPid: postmasterPid(path.join(dataDir, 'pg')) });
    return {
      machine: machine(),
      profiles,
      events,
      segments: keys.length,
      batchSize,
      ...result,
      targetPerSecond: TARGET_PER_SECOND,
      meetsTarget: result.steady.reevaluationsPerSecond >= TARGET_PER_SECOND,
    };
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await benchSegmentsRealtime();
  console.log(JSON.stringify(result, null, 2));
}
