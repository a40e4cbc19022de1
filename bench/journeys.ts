/**
 * Journey executor benchmark on one embedded PostgreSQL in a temporary folder.
 *
 * (a) Step throughput: BENCH_JOURNEY_INSTANCES (5,000) instances of entry → send → delay 1 min →
 *     send → end, advanced by two executors in parallel (batches of 200, as the worker runs
 *     them): the first pass walks 3 nodes per instance and stops at the delay, the second (clock
 *     moved past the delay) 3 more. Instances/s and node steps/s per pass. The enqueue writes one
 *     outbox row per send in the step's transaction (channels' own cost is not measured here).
 * (b) Waiting cost: table and index bytes per waiting instance after the first pass.
 * (c) Entry latency: BENCH_JOURNEY_ENTRIES (1,000) segment entries recorded at
 *     BENCH_JOURNEY_RATE (50/s) while the worker's journey loops run: from the transition's
 *     commit to the instance's creation, and to its first message enqueued.
 *
 * Standalone: `node --import tsx bench/journeys.ts`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { JourneyDefinition } from '../server/src/journeys/definition.ts';
import { advanceDueInstances, enterProfiles, type EnqueueMessages } from '../server/src/journeys/executor.ts';
import { startJourneyLoops } from '../server/src/journeys/loop.ts';
import { createJourney, publishJourney } from '../server/src/journeys/store.ts';
import { prepareTransitionStorage, recordTransitions, type SegmentRef } from '../server/src/segments/transitions.ts';
import { createPool, withTransaction, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { freePort, machine, percentile } from './system.ts';

function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

const outboxEnqueue: EnqueueMessages = async (client, requests, now) => {
  if (requests.length === 0) return [];
  const { rows } = await client.query<{ id: number }>(
    `insert into bench_outbox (profile_id, idempotency_key, at, committed_at)
     select p, k, $3, clock_timestamp() from unnest($1::uuid[], $2::text[]) with ordinality as x(p, k, n) order by n returning id`,
    [requests.map((r) => r.profileId), requests.map((r) => r.idempotencyKey), now],
  );
  return rows.map((row) => ({ messageId: String(row.id), status: 'queued' as const }));
};

const twoSends = (trigger: JourneyDefinition['nodes'][number] & { kind: 'entry' }): JourneyDefinition => ({
  nodes: [
    trigger,
    { id: 'first', kind: 'send', channel: 'email', template: 'first', purpose: 'marketing', next: 'pause' },
    { id: 'pause', kind: 'delay', duration: { amount: 1, unit: 'minutes' }, next: 'second' },
    { id: 'second', kind: 'send', channel: 'sms', template: 'second', purpose: 'marketing', next: 'end' },
    { id: 'end', kind: 'end' },
  ],
});

async function advanceAll(db: Db, now: Date): Promise<number> {
  let taken = 0;
  const worker = async () => {
    for (;;) {
      const outcome = await advanceDueInstances({ db, enqueue: outboxEnqueue, now: () => now }, 200);
      if (outcome.failed.length > 0) throw new Error(`step failed: ${outcome.failed[0]!.error}`);
      if (outcome.taken === 0) return;
      taken += outcome.taken;
    }
  };
  await Promise.all([worker(), worker()]);
  return taken;
}

export async function benchJourneys(options: { log?: (line: string) => void } = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const instances = envCount('BENCH_JOURNEY_INSTANCES', 5_000);
  const entries = envCount('BENCH_JOURNEY_ENTRIES', 1_000);
  const rate = envCount('BENCH_JOURNEY_RATE', 50);
  const host = machine();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-journeys-'));
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url, 10);
  try {
    await migrate(db);
    await db.query(
      'create table bench_outbox (id bigserial primary key, profile_id uuid not null, idempotency_key text not null, at timestamptz not null, committed_at timestamptz not null)',
    );
    const workspace = await createWorkspace(db, { slug: 'bench', name: 'bench' });

    // (a) and (b)
    const start = new Date();
    const journey = await createJourney(db, workspace.id, {
      key: 'throughput',
      name: 'throughput',
      definition: twoSends({ id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'first' }),
    });
    await publishJourney(db, workspace.id, 'throughput', start);
    const { rows: profiles } = await db.query<{ id: string }>('insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id', [
      workspace.id,
      instances,
    ]);
    await prepareTransitionStorage(db, start);
    log(`Entering ${instances.toLocaleString('en')} profiles …`);
    const enterStarted = performance.now();
    for (let i = 0; i < profiles.length; i += 1000) {
      await withTransaction(db, (client) =>
        enterProfiles(client, workspace.id, journey.id, profiles.slice(i, i + 1000).map((p) => ({ profileId: p.id, entry: 'api' as const })), start),
      );
    }
    const enterSeconds = (performance.now() - enterStarted) / 1000;
    log('Pass 1: entry → send → delay …');
    let started = performance.now();
    const firstTaken = await advanceAll(db, start);
    const firstSeconds = (performance.now() - started) / 1000;
    const { rows: size } = await db.query<{ table_bytes: number; index_bytes: number }>(
      `select pg_table_size('journey_instances')::bigint as table_bytes, pg_indexes_size('journey_instances')::bigint as index_bytes`,
    );
    log('Pass 2: delay → send → end …');
    started = performance.now();
    const secondTaken = await advanceAll(db, new Date(start.getTime() + 61_000));
    const secondSeconds = (performance.now() - started) / 1000;
    const { rows: sent } = await db.query<{ n: number; keys: number }>('select count(*)::int as n, count(distinct idempotency_key)::int as keys from bench_outbox');
    if (firstTaken !== instances || secondTaken !== instances || sent[0]!.n !== 2 * instances || sent[0]!.keys !== 2 * instances) {
      throw new Error(`expected ${instances} instances per pass and ${2 * instances} messages, got ${firstTaken}, ${secondTaken}, ${sent[0]!.n}`);
    }

    // (c) Entry latency from segment transitions through the worker loops.
    await db.query('truncate bench_outbox');
    const { rows: segmentRows } = await db.query<{ id: string }>(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, 'hot', 'hot', 'static', null, 'ready') returning id`,
      [workspace.id],
    );
    const segment: SegmentRef = { id: segmentRows[0]!.id, key: 'hot', name: 'hot', version: 1 };
    await createJourney(db, workspace.id, {
      key: 'latency',
      name: 'latency',
      definition: twoSends({ id: 'in', kind: 'entry', trigger: { kind: 'segment', segment: 'hot' }, next: 'first' }),
    });
    await publishJourney(db, workspace.id, 'latency', new Date());
    const { rows: fresh } = await db.query<{ id: string }>('insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id', [
      workspace.id,
      entries,
    ]);
    const loops = startJourneyLoops({ db, enqueue: outboxEnqueue, onError: (error, name) => log(`${name}: ${String(error)}`) });
    log(`Recording ${entries} segment entries at ${rate}/s with the journey loops running …`);
    const committedAt = new Map<string, number>();
    const intervalMs = 1000 / rate;
    const latencyStarted = performance.now();
    for (let i = 0; i < fresh.length; i++) {
      const due = latencyStarted + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const at = new Date();
      await prepareTransitionStorage(db, at);
      await withTransaction(db, (client) => recordTransitions(client, workspace.id, [{ segment, profileId: fresh[i]!.id, member: true }], 'event', at));
      committedAt.set(fresh[i]!.id, Date.now());
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await db.query<{ n: number }>('select count(*)::int as n from bench_outbox');
      if (rows[0]!.n >= entries || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await loops.stop();
    const { rows: timings } = await db.query<{ profile_id: string; entered: Date; sent: Date | null }>(
      `select i.profile_id, i.created_at as entered, o.committed_at as sent
         from (select profile_id, entered_at as created_at from journey_instances where journey_id <> $1) i
         left join bench_outbox o on o.profile_id = i.profile_id and o.idempotency_key like '%:first:%'`,
      [journey.id],
    );
    const toEntry = timings.map((t) => t.entered.getTime() - committedAt.get(t.profile_id)!).sort((a, b) => a - b);
    const toSend = timings.filter((t) => t.sent).map((t) => t.sent!.getTime() - committedAt.get(t.profile_id)!).sort((a, b) => a - b);

    const nodeSteps = (taken: number) => taken * 3;
    const result = {
      instances,
      enterPerSecond: Math.round(instances / enterSeconds),
      pass1: { seconds: Math.round(firstSeconds * 10) / 10, instancesPerSecond: Math.round(firstTaken / firstSeconds), nodeStepsPerSecond: Math.round(nodeSteps(firstTaken) / firstSeconds) },
      pass2: { seconds: Math.round(secondSeconds * 10) / 10, instancesPerSecond: Math.round(secondTaken / secondSeconds), nodeStepsPerSecond: Math.round(nodeSteps(secondTaken) / secondSeconds) },
      waitingBytesPerInstance: Math.round((Number(size[0]!.table_bytes) + Number(size[0]!.index_bytes)) / instances),
      entryLatencyMs: { entries: toEntry.length, p50: percentile(toEntry, 50), p95: percentile(toEntry, 95), p99: percentile(toEntry, 99), max: percentile(toEntry, 100) },
      firstSendLatencyMs: { sent: toSend.length, p50: percentile(toSend, 50), p99: percentile(toSend, 99) },
      machine: host,
    };
    const summary = [
      `${instances.toLocaleString('en')} instances entered at ${result.enterPerSecond}/s; two executors, batches of 200:`,
      `  pass 1 (entry → send → delay): ${result.pass1.instancesPerSecond} instances/s, ${result.pass1.nodeStepsPerSecond} node steps/s (${result.pass1.seconds} s)`,
      `  pass 2 (delay → send → end):   ${result.pass2.instancesPerSecond} instances/s, ${result.pass2.nodeStepsPerSecond} node steps/s (${result.pass2.seconds} s)`,
      `waiting instance: ${result.waitingBytesPerInstance} bytes of journey_instances table + indexes`,
      `segment entry → instance (${entries} entries at ${rate}/s, worker loops polling every 100 ms): p50 ${result.entryLatencyMs.p50} ms, p95 ${result.entryLatencyMs.p95} ms, p99 ${result.entryLatencyMs.p99} ms, max ${result.entryLatencyMs.max} ms`,
      `segment entry → first message enqueued (${toSend.length} sent): p50 ${result.firstSendLatencyMs.p50} ms, p99 ${result.firstSendLatencyMs.p99} ms`,
      `load average at start ${host.loadAverageAtStart.join(' ')}`,
    ];
    return { summary, ...result };
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isEntry && fileURLToPath(import.meta.url)) {
  const result = await benchJourneys();
  console.log((result.summary as string[]).join('\n'));
}
