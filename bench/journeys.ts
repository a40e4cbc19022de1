/**
 * Journey executor benchmark on one embedded PostgreSQL in a temporary folder. CPU is measured as
 * seconds of this process plus seconds of the PostgreSQL cluster (postmaster and backends, from
 * /proc), which holds up on a shared machine where wall-clock rates do not.
 *
 * (a) Step throughput: BENCH_JOURNEY_INSTANCES (20,000) instances of entry → send → delay 1 min →
 *     send → end, entered with `enterProfiles` (1,000 per call) and advanced by two executors in
 *     parallel (batches of 500, as the worker runs them): pass 1 walks 3 nodes per instance and
 *     stops at the delay, pass 2 (clock past the delay) 3 more. The enqueue writes one outbox row
 *     per message in the batch's transaction (channels' own cost is measured by bench/channels.ts
 *     and in (d)).
 * (b) Waiting cost: BENCH_JOURNEY_WAITING (100,000; the issue's 1,000,000 by env) instances
 *     waiting on timers days away, inserted in bulk: bytes of table + indexes per instance, then
 *     the worker's executor loops idle for 10 s beside them: CPU, RSS, and the claim query's time.
 * (c) Timer wake-up lag: BENCH_JOURNEY_TIMER_RATE (2,000) timers per second due over
 *     BENCH_JOURNEY_TIMER_SECONDS (10) s, beside the waiting instances of (b), taken by the
 *     worker's journey loops on the real clock: lag = the resumed step's send committed − due_at.
 * (d) Trigger latency: BENCH_JOURNEY_ENTRIES (1,000) trigger events stored at BENCH_JOURNEY_RATE
 *     (50/s) for an event-triggered journey (entry → webhook send → end), with the worker's
 *     journey loops, the real channels enqueue (guards) and the channels dispatcher calling a
 *     local fake webhook provider: event committed → provider called.
 *
 * Standalone: `node --import tsx bench/journeys.ts`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { putAccount } from '../server/src/channels/accounts.ts';
import { enqueueMessages } from '../server/src/channels/index.ts';
import { createTemplate } from '../server/src/channels/template-store.ts';
import { startChannelLoops } from '../server/src/channels/worker.ts';
import type { JourneyDefinition } from '../server/src/journeys/definition.ts';
import { advanceDueInstances, enterProfiles, type EnqueueMessages } from '../server/src/journeys/executor.ts';
import { startJourneyLoops } from '../server/src/journeys/loop.ts';
import { createJourney, publishJourney } from '../server/src/journeys/store.ts';
import { insertSystemEvents, prepareTransitionStorage } from '../server/src/segments/transitions.ts';
import { createPool, withTransaction, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { clusterCpuSeconds, freePort, machine, percentile, postmasterPid, processCpuSeconds, sampleRss } from './system.ts';

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
      const outcome = await advanceDueInstances({ db, enqueue: outboxEnqueue, now: () => now }, 500);
      if (outcome.failed.length > 0) throw new Error(`step failed: ${outcome.failed[0]!.error}`);
      if (outcome.taken === 0) return;
      taken += outcome.taken;
    }
  };
  await Promise.all([worker(), worker()]);
  return taken;
}

/** A fake webhook provider: when each profile's first message arrived. */
async function fakeProvider(): Promise<{ url: string; calls: Map<string, number>; close: () => Promise<void> }> {
  const calls = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = Date.now();
      try {
        const payload = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { profileId?: string };
        if (payload.profileId && !calls.has(payload.profileId)) calls.set(payload.profileId, at);
      } catch {
        // not ours
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}/hook`, calls, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function benchJourneys(options: { log?: (line: string) => void } = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(`[journeys] ${line}`));
  const instances = envCount('BENCH_JOURNEY_INSTANCES', 20_000);
  const waiting = envCount('BENCH_JOURNEY_WAITING', 100_000);
  const timerRate = envCount('BENCH_JOURNEY_TIMER_RATE', 2_000);
  const timerSeconds = envCount('BENCH_JOURNEY_TIMER_SECONDS', 10);
  const entries = envCount('BENCH_JOURNEY_ENTRIES', 1_000);
  const rate = envCount('BENCH_JOURNEY_RATE', 50);
  const host = machine();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-journeys-'));
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url, 10);
  const provider = await fakeProvider();
  const pgPid = postmasterPid(path.join(dataDir, 'pg'));
  const cpu = () => ({ node: processCpuSeconds(), pg: clusterCpuSeconds(pgPid) });
  const cpuSince = (start: { node: number; pg: number }) => {
    const end = cpu();
    return { node: end.node - start.node, pg: end.pg - start.pg };
  };
  try {
    await migrate(db);
    await db.query(
      'create table bench_outbox (id bigserial primary key, profile_id uuid not null, idempotency_key text not null, at timestamptz not null, committed_at timestamptz not null)',
    );
    const workspace = await createWorkspace(db, { slug: 'bench', name: 'bench' });

    // (a) Step throughput.
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
    log(`(a) entering ${instances.toLocaleString('en')} profiles …`);
    let started = performance.now();
    let cpuStart = cpu();
    for (let i = 0; i < profiles.length; i += 1000) {
      await withTransaction(db, (client) =>
        enterProfiles(client, workspace.id, journey.id, profiles.slice(i, i + 1000).map((p) => ({ profileId: p.id, entry: 'api' as const })), start),
      );
    }
    const enterSeconds = (performance.now() - started) / 1000;
    const enterCpu = cpuSince(cpuStart);
    const pass = async (label: string, at: Date) => {
      log(`(a) ${label} …`);
      const began = performance.now();
      const cpuBegan = cpu();
      const taken = await advanceAll(db, at);
      const seconds = (performance.now() - began) / 1000;
      const used = cpuSince(cpuBegan);
      const steps = taken * 3;
      return {
        taken,
        seconds: round(seconds),
        instancesPerSecond: Math.round(taken / seconds),
        nodeStepsPerSecond: Math.round(steps / seconds),
        cpuMsPerStep: { node: round((used.node * 1000) / steps, 3), postgres: round((used.pg * 1000) / steps, 3), total: round(((used.node + used.pg) * 1000) / steps, 3) },
        stepsPerCpuSecond: Math.round(steps / (used.node + used.pg)),
      };
    };
    const pass1 = await pass('pass 1: entry → send → delay', start);
    const pass2 = await pass('pass 2: delay → send → end', new Date(start.getTime() + 61_000));
    const { rows: sent } = await db.query<{ n: number; keys: number }>('select count(*)::int as n, count(distinct idempotency_key)::int as keys from bench_outbox');
    if (pass1.taken !== instances || pass2.taken !== instances || sent[0]!.n !== 2 * instances || sent[0]!.keys !== 2 * instances) {
      throw new Error(`expected ${instances} instances per pass and ${2 * instances} messages, got ${pass1.taken}, ${pass2.taken}, ${sent[0]!.n}`);
    }
    const { rows: history } = await db.query<{ bytes: string; steps: number }>(
      `select pg_total_relation_size('journey_steps')::bigint as bytes, (select count(*)::int from journey_steps) as steps`,
    );
    await db.query('truncate bench_outbox');

    // (b) Waiting cost.
    const sizeOf = async () =>
      Number((await db.query<{ bytes: string }>(`select pg_total_relation_size('journey_instances')::bigint as bytes`)).rows[0]!.bytes);
    const sizeBefore = await sizeOf();
    log(`(b) inserting ${waiting.toLocaleString('en')} instances waiting on timers 1–30 days away …`);
    started = performance.now();
    const chunk = 100_000;
    for (let done = 0; done < waiting; done += chunk) {
      const n = Math.min(chunk, waiting - done);
      await db.query(
        `insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, due_at, entry, entered_at, wait_started_at, visits, step_count)
         select $1, $2, 1, gen_random_uuid(), 'active', 'pause', 'wait', $3::timestamptz + make_interval(secs => 86400 + random() * 29 * 86400), 'api', $3, $3,
                '{"in": 1, "first": 1, "pause": 1}', 3
           from generate_series(1, $4)`,
        [workspace.id, journey.id, new Date(), n],
      );
      log(`(b)   ${(done + n).toLocaleString('en')}`);
    }
    await db.query('analyze journey_instances');
    const insertSeconds = (performance.now() - started) / 1000;
    const sizeAfter = await sizeOf();
    const claimMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await advanceDueInstances({ db, enqueue: outboxEnqueue, now: () => new Date() });
      claimMs.push(performance.now() - t);
    }
    claimMs.sort((a, b) => a - b);
    log('(b) worker journey loops idle beside them for 10 s …');
    const rssBefore = Math.round(process.memoryUsage.rss() / 1024 / 1024);
    const rss = sampleRss();
    cpuStart = cpu();
    const idleLoops = startJourneyLoops({ db, enqueue: outboxEnqueue, onError: (error, name) => log(`${name}: ${String(error)}`) });
    await sleep(10_000);
    await idleLoops.stop();
    const idleCpu = cpuSince(cpuStart);
    const rssPeak = rss.stop();

    // (c) Timer wake-up lag at timerRate due timers per second.
    const timers = timerRate * timerSeconds;
    const timerJourney = await createJourney(db, workspace.id, {
      key: 'timers',
      name: 'timers',
      definition: twoSends({ id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'first' }),
    });
    await publishJourney(db, workspace.id, 'timers', new Date());
    const firstDue = new Date(Date.now() + 5_000);
    log(`(c) ${timers.toLocaleString('en')} timers due at ${timerRate}/s from ${firstDue.toISOString()} …`);
    await db.query(
      `create table bench_timers as
         select gen_random_uuid() as profile_id, $1::timestamptz + make_interval(secs => (n - 1)::float8 / $2) as due from generate_series(1, $3) as n`,
      [firstDue, timerRate, timers],
    );
    await db.query(
      `insert into journey_instances (workspace_id, journey_id, version, profile_id, status, node_id, phase, due_at, entry, entered_at, wait_started_at, visits, step_count)
       select $1, $2, 1, profile_id, 'active', 'pause', 'wait', due, 'api', now(), now(), '{"in": 1, "first": 1, "pause": 1}', 3 from bench_timers`,
      [workspace.id, timerJourney.id],
    );
    const timerLoops = startJourneyLoops({ db, enqueue: outboxEnqueue, onError: (error, name) => log(`${name}: ${String(error)}`) });
    cpuStart = cpu();
    const timerDeadline = firstDue.getTime() + timerSeconds * 1000 + 120_000;
    for (;;) {
      await sleep(500);
      const { rows } = await db.query<{ n: number }>('select count(*)::int as n from bench_outbox');
      if (rows[0]!.n >= timers || Date.now() > timerDeadline) break;
    }
    await timerLoops.stop();
    const timerCpu = cpuSince(cpuStart);
    const { rows: lagRows } = await db.query<{ lag: number }>(
      'select extract(epoch from o.committed_at - t.due)::float8 * 1000 as lag from bench_outbox o join bench_timers t using (profile_id)',
    );
    const lag = lagRows.map((row) => row.lag).sort((a, b) => a - b);
    const timerSteps = lag.length * 2;

    // (d) Trigger event stored → provider called, through the real channels enqueue and dispatcher.
    await db.query('truncate bench_outbox');
    const secretsKey = crypto.randomBytes(32);
    await withTransaction(db, async (client) => {
      await putAccount(client, secretsKey, workspace.id, {
        key: 'hook',
        kind: 'webhook',
        provider: 'webhook',
        settings: { url: provider.url },
        secrets: { signingSecret: 'bench-secret-0123456789' },
      });
      await createTemplate(client, workspace.id, { key: 'cart', channel: 'webhook', name: 'Cart', defaultLocale: 'en', content: { en: { body: '{"cart": "{{ event.cart }}"}' } } });
    });
    await createJourney(db, workspace.id, {
      key: 'cart',
      name: 'cart',
      definition: {
        nodes: [
          { id: 'in', kind: 'entry', trigger: { kind: 'event', event: 'Cart Abandoned' }, reentry: { mode: 'always' }, next: 'hook' },
          { id: 'hook', kind: 'send', channel: 'webhook', template: 'cart', purpose: 'transactional', next: 'end' },
          { id: 'end', kind: 'end' },
        ],
      },
    });
    await publishJourney(db, workspace.id, 'cart', new Date());
    const { rows: fresh } = await db.query<{ id: string }>('insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id', [
      workspace.id,
      entries,
    ]);
    const journeyLoops = startJourneyLoops({ db, enqueue: enqueueMessages, onError: (error, name) => log(`${name}: ${String(error)}`) });
    const channelLoops = startChannelLoops(db, (error, name) => log(`${name}: ${String(error)}`), { secretsKey, publicUrl: 'http://127.0.0.1:8080' });
    log(`(d) storing ${entries} trigger events at ${rate}/s with the journey and channel loops running …`);
    const storedAt = new Map<string, number>();
    const intervalMs = 1000 / rate;
    const latencyStarted = performance.now();
    for (let i = 0; i < fresh.length; i++) {
      const due = latencyStarted + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const at = new Date();
      const profileId = fresh[i]!.id;
      await prepareTransitionStorage(db, at);
      await withTransaction(db, (client) =>
        insertSystemEvents(client, workspace.id, [{ messageId: `cart-${profileId}`, event: 'Cart Abandoned', profileId, properties: { cart: `c-${i}` } }], at),
      );
      storedAt.set(profileId, Date.now());
    }
    const deadline = Date.now() + 60_000;
    while (provider.calls.size < entries && Date.now() < deadline) await sleep(100);
    await journeyLoops.stop();
    await channelLoops.stop();
    const { rows: cartInstances } = await db.query<{ status: string; node_id: string; n: number }>(
      `select i.status, i.node_id, count(*)::int as n from journey_instances i join journeys j on j.id = i.journey_id where j.key = 'cart' group by 1, 2`,
    );
    const { rows: messageStates } = await db.query<{ status: string; reason: string | null; n: number }>(
      'select status, reason, count(*)::int as n from messages group by 1, 2',
    );
    log(`(d) cart instances ${JSON.stringify(cartInstances)}; messages ${JSON.stringify(messageStates)}`);
    const toProvider = [...provider.calls].map(([profileId, at]) => at - storedAt.get(profileId)!).sort((a, b) => a - b);

    const result = {
      instances,
      enter: { perSecond: Math.round(instances / enterSeconds), cpuMsPerEntry: round(((enterCpu.node + enterCpu.pg) * 1000) / instances, 3) },
      pass1,
      pass2,
      stepHistoryBytesPerStep: Math.round(Number(history[0]!.bytes) / history[0]!.steps),
      waiting: {
        instances: waiting,
        insertSeconds: round(insertSeconds),
        bytesPerInstance: Math.round((sizeAfter - sizeBefore) / waiting),
        tableAndIndexesMB: Math.round(sizeAfter / 1024 / 1024),
        claimWhenNothingDueMs: { p50: percentile(claimMs, 50), max: percentile(claimMs, 100) },
        idle10s: { nodeCpuSeconds: round(idleCpu.node, 2), postgresCpuSeconds: round(idleCpu.pg, 2), rssMB: { before: rssBefore, peak: rssPeak } },
      },
      timers: {
        due: timers,
        perSecond: timerRate,
        resumed: lag.length,
        lagMs: { p50: percentile(lag, 50), p95: percentile(lag, 95), p99: percentile(lag, 99), max: percentile(lag, 100) },
        cpuMsPerStep: round(((timerCpu.node + timerCpu.pg) * 1000) / Math.max(1, timerSteps), 3),
      },
      trigger: {
        events: entries,
        perSecond: rate,
        providerCalled: toProvider.length,
        toProviderMs: { p50: percentile(toProvider, 50), p95: percentile(toProvider, 95), p99: percentile(toProvider, 99), max: percentile(toProvider, 100) },
      },
      loadAverageAtEnd: os.loadavg().map((value) => round(value, 2)),
      machine: host,
    };
    const summary = [
      `(a) ${instances.toLocaleString('en')} instances entered at ${result.enter.perSecond}/s; two executors, batches of 500:`,
      `    pass 1 (entry → send → delay): ${pass1.nodeStepsPerSecond} node steps/s (${pass1.seconds} s); CPU per step ${pass1.cpuMsPerStep.total} ms (node ${pass1.cpuMsPerStep.node}, PostgreSQL ${pass1.cpuMsPerStep.postgres}) = ${pass1.stepsPerCpuSecond} steps per CPU-second`,
      `    pass 2 (delay → send → end):   ${pass2.nodeStepsPerSecond} node steps/s (${pass2.seconds} s); CPU per step ${pass2.cpuMsPerStep.total} ms (node ${pass2.cpuMsPerStep.node}, PostgreSQL ${pass2.cpuMsPerStep.postgres}) = ${pass2.stepsPerCpuSecond} steps per CPU-second`,
      `    step history: ${result.stepHistoryBytesPerStep} bytes per step row`,
      `(b) ${waiting.toLocaleString('en')} waiting instances: ${result.waiting.bytesPerInstance} bytes each (journey_instances ${result.waiting.tableAndIndexesMB} MB with indexes), inserted in ${result.waiting.insertSeconds} s;`,
      `    claim with nothing due p50 ${result.waiting.claimWhenNothingDueMs.p50} ms; 10 s of idle executor loops: node ${result.waiting.idle10s.nodeCpuSeconds} CPU-s, PostgreSQL ${result.waiting.idle10s.postgresCpuSeconds} CPU-s, RSS ${rssBefore} → peak ${rssPeak} MB`,
      `(c) ${timers.toLocaleString('en')} timers due at ${timerRate}/s (beside the waiting ones): ${lag.length} resumed; lag p50 ${result.timers.lagMs.p50} ms, p95 ${result.timers.lagMs.p95} ms, p99 ${result.timers.lagMs.p99} ms, max ${result.timers.lagMs.max} ms; CPU ${result.timers.cpuMsPerStep} ms per step`,
      `(d) trigger event stored → provider called (${entries} at ${rate}/s, real channels enqueue + dispatcher, fake webhook): ${toProvider.length} called; p50 ${result.trigger.toProviderMs.p50} ms, p95 ${result.trigger.toProviderMs.p95} ms, p99 ${result.trigger.toProviderMs.p99} ms, max ${result.trigger.toProviderMs.max} ms`,
      `load average at start ${host.loadAverageAtStart.join(' ')}, at end ${result.loadAverageAtEnd.join(' ')}`,
    ];
    return { summary, ...result };
  } finally {
    await db.end();
    await provider.close();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isEntry && fileURLToPath(import.meta.url)) {
  const result = await benchJourneys();
  console.log((result.summary as string[]).join('\n'));
}
