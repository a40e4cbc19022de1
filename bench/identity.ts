/**
 * Identity benchmark on one embedded PostgreSQL in a temporary folder:
 *
 * 1. Resolution throughput: people whose events carry 1–4 identifiers each (anonymous visits,
 *    logins, app opens, store purchases by phone), 2 of every 10 events merging two profiles, are
 *    stored through `storeEvents` (the collection path) and then drained by the real resolver
 *    (the identity loop's drain, `createIdentityDrain`: batches of `IDENTITY_BATCH` growing behind the
 *    backlog). Target ≥ 10,000 events/s.
 * 2. Profile read latency over a large database generated with set-based SQL (target 1,000,000
 *    profiles and 10,000,000 events): a profile with its traits, identifiers and latest 50 events,
 *    read by the profile API's own functions (locateProfile + getProfile). Target p99 < 10 ms.
 *
 * Standalone: `node --import tsx bench/identity.ts`. Sizes: BENCH_IDENTITY_EVENTS (200,000),
 * BENCH_PROFILES (1,000,000), BENCH_PROFILE_EVENTS (10,000,000), BENCH_PROFILE_READS (2,000).
 * BENCH_IDENTITY_PROFILE=1 adds where the resolver's time goes, statement by statement.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import { createIdentityDrain, IDENTITY_BATCH, IDENTITY_BATCH_MAX } from '../server/src/identity/loop.ts';
import { saveWorkspaceIdentity } from '../server/src/identity/settings-store.ts';
import { normalizeEvent, type NormalizedEvent } from '../server/src/ingest/normalize.ts';
import { storeEvents, type SourceRef } from '../server/src/ingest/store.ts';
import { getProfile, locateProfile } from '../server/src/profiles/queries.ts';
import { createPool, type Db, type Queryable } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { ensureMonthlyPartitions } from '../server/src/storage/partitions.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';
import { clusterCpuSeconds, freePort, machine, machineBusySeconds, median, percentile, postmasterPid, processCpuSeconds } from './system.ts';

export interface IdentityBenchOptions {
  events?: number;
  profiles?: number;
  profileEvents?: number;
  reads?: number;
  /** Time every statement of the resolver and report the totals. */
  profileStatements?: boolean;
  log?: (line: string) => void;
}

const TARGET_EVENTS_PER_SECOND = 10_000;
const TARGET_READ_P99_MS = 10;
/**
 * The identity loop's batch (identity/loop.ts): IDENTITY_BATCH, doubling behind the backlog up to
 * IDENTITY_BATCH_MAX, as the worker drains. BENCH_RESOLVER_BATCH / BENCH_RESOLVER_BATCH_MAX try others
 * (the same value twice: a fixed batch).
 */
const RESOLVER_BATCH = envCount('BENCH_RESOLVER_BATCH') ?? IDENTITY_BATCH;
const RESOLVER_BATCH_MAX = envCount('BENCH_RESOLVER_BATCH_MAX') ?? (RESOLVER_BATCH === IDENTITY_BATCH ? IDENTITY_BATCH_MAX : RESOLVER_BATCH);
const STORE_BATCH = 1000;
const EVENTS_PER_PERSON = 10;
/** People whose events are interleaved with each other (a day's active visitors, say). */
const COHORT = 2000;
const T0 = Date.parse('2026-01-05T00:00:00Z');
/** Timeline reads return the latest 50 events, as the profile API's default page. */
const TIMELINE_PAGE = 50;

const round1 = (value: number) => Math.round(value * 10) / 10;

function envCount(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

/** Deterministic pseudo-random numbers (mulberry32): every run resolves the same events. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One person's 10 events in order, with 1–4 identifiers each. Events 6 and 8 join a profile made
 * earlier from other identifiers (the app's anonymous visitor, the store's phone-only customer):
 * 2 merges in 10 events.
 */
export function personEvents(i: number): Array<Record<string, unknown>> {
  const web = `w-${i}`;
  const app = `p-${i}`;
  const user = `u-${i}`;
  const email = `person${i}@example.com`;
  const phone = `+86 139${String(i).padStart(8, '0')}`;
  return [
    { type: 'page', anonymousId: web, name: 'Home' },
    { type: 'page', anonymousId: web, name: 'Product' },
    { type: 'screen', anonymousId: app, name: 'Start' },
    { type: 'identify', userId: user, anonymousId: web, traits: { email, plan: 'free', visits: 1 } },
    { type: 'track', event: 'Product Viewed', anonymousId: app, properties: { sku: `SKU-${i % 500}` } },
    { type: 'track', event: 'Signed In', userId: user, anonymousId: app },
    { type: 'track', event: 'Order Completed', anonymousId: `pos-${i}`, context: { externalIds: [{ id: phone, type: 'phone' }] }, properties: { revenue: 99 } },
    { type: 'identify', userId: user, anonymousId: web, traits: { email, phone, plan: 'gold', visits: 1 } },
    { type: 'track', event: 'Coupon Used', userId: user },
    { type: 'page', anonymousId: web, context: { externalIds: [{ id: app, type: 'anonymous_id' }] }, name: 'Account' },
  ].map((event, step) => ({ ...event, timestamp: new Date(T0 + step * 3_600_000 + i * 1000).toISOString() }));
}

/**
 * Events in arrival order: people come in cohorts whose events interleave at random, each
 * person's own events keeping their order. Message ids sort in arrival order, because a stored
 * batch is numbered (seq) in messageId order.
 */
export function arrivalOrder(people: number): NormalizedEvent[] {
  const rand = random(42);
  const receivedAt = new Date(T0 + 86_400_000);
  const events: NormalizedEvent[] = [];
  for (let start = 0; start < people; start += COHORT) {
    const queues = Array.from({ length: Math.min(COHORT, people - start) }, (_, k) => personEvents(start + k));
    const open = queues.map((_, k) => k);
    while (open.length > 0) {
      const pick = Math.floor(rand() * open.length);
      const queue = queues[open[pick]!]!;
      const raw = { ...queue.shift()!, messageId: `b-${String(events.length).padStart(9, '0')}` };
      const normalized = normalizeEvent(raw, { receivedAt, historical: true });
      if (!normalized.ok) throw new Error(`benchmark event refused: ${normalized.rejection.message}`);
      events.push(normalized.event);
      if (queue.length === 0) open.splice(pick, 1);
    }
  }
  return events;
}

interface StatementTimes {
  stop(): Array<{ statement: string; calls: number; ms: number }>;
}

/** Wall time of every statement sent through `pg` clients, grouped by the statement's first words. */
function timeStatements(): StatementTimes {
  const prototype = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = prototype.query;
  const totals = new Map<string, { calls: number; ms: number }>();
  prototype.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : typeof first === 'object' && first && 'text' in first ? String(first.text) : '?';
    const label = text.replace(/\s+/g, ' ').trim().slice(0, 90);
    const started = performance.now();
    const result = original.apply(this, args);
    if (result instanceof Promise) {
      return result.finally(() => {
        const entry = totals.get(label) ?? { calls: 0, ms: 0 };
        entry.calls++;
        entry.ms += performance.now() - started;
        totals.set(label, entry);
      });
    }
    return result;
  };
  return {
    stop() {
      prototype.query = original;
      return [...totals]
        .map(([statement, entry]) => ({ statement, calls: entry.calls, ms: Math.round(entry.ms) }))
        .sort((a, b) => b.ms - a.ms);
    },
  };
}

async function benchResolution(db: Db, pgPid: number, eventCount: number, profileStatements: boolean, log: (line: string) => void) {
  const workspace = await createWorkspace(db, { slug: 'bench-resolve', name: 'Bench resolution' });
  const { source } = await createSource(db, workspace.id, { name: 'Web shop', kind: 'web' });
  await saveWorkspaceIdentity(db, workspace.id, { traitStrategies: { traits: { visits: { kind: 'sum' } } } });
  const ref: SourceRef = { workspaceId: workspace.id, sourceId: source.id };
  const people = Math.ceil(eventCount / EVENTS_PER_PERSON);

  log(`Generating ${(people * EVENTS_PER_PERSON).toLocaleString('en')} events of ${people.toLocaleString('en')} people …`);
  const events = arrivalOrder(people);
  log('Storing them through storeEvents …');
  const storeStarted = performance.now();
  for (let start = 0; start < events.length; start += STORE_BATCH) {
    const result = await storeEvents(db, ref, events.slice(start, start + STORE_BATCH));
    if (result.stored.length !== Math.min(STORE_BATCH, events.length - start)) throw new Error('not every benchmark event was stored');
  }
  const storeSeconds = (performance.now() - storeStarted) / 1000;
  await db.query('vacuum analyze events, identity_queue, event_message_ids');

  log(`Resolving ${events.length.toLocaleString('en')} queued events …`);
  const statements = profileStatements ? timeStatements() : undefined;
  const before = { node: processCpuSeconds(), postgres: clusterCpuSeconds(pgPid), machine: machineBusySeconds() };
  const started = performance.now();
  let batches = 0;
  // The worker's drain (the only workspace with queued events is this one).
  const drain = createIdentityDrain(db, RESOLVER_BATCH, RESOLVER_BATCH_MAX);
  // Each batch's wall time: how long it held the workspace's identity lock (and, merging, the segment lock for its writes).
  const batchMs: number[] = [];
  for (let at = performance.now(); (await drain()) > 0; at = performance.now()) {
    batchMs.push(performance.now() - at);
    batches++;
  }
  const seconds = (performance.now() - started) / 1000;
  const nodeCpu = processCpuSeconds() - before.node;
  const postgresCpu = clusterCpuSeconds(pgPid) - before.postgres;
  const otherCpu = machineBusySeconds() - before.machine - nodeCpu - postgresCpu;
  const timings = statements?.stop();

  const { rows } = await db.query<{ merges: number; live: number; unresolved: number; refusals: number; identifiers: number }>(
    `select (select count(*)::int from identity_merges where workspace_id = $1) as merges,
            (select count(*)::int from profiles where workspace_id = $1 and merged_into is null) as live,
            (select count(*)::int from events where workspace_id = $1 and profile_id is null) as unresolved,
            (select count(*)::int from identity_refusals where workspace_id = $1) as refusals,
            (select count(*)::int from profile_identifiers where workspace_id = $1 and unbound_at is null) as identifiers`,
    [workspace.id],
  );
  const check = rows[0]!;
  const eventsPerSecond = Math.round(events.length / seconds);
  return {
    events: events.length,
    people,
    storeSeconds: round1(storeSeconds),
    seconds: round1(seconds),
    eventsPerSecond,
    target: TARGET_EVENTS_PER_SECOND,
    met: eventsPerSecond >= TARGET_EVENTS_PER_SECOND,
    resolverBatch: RESOLVER_BATCH,
    resolverBatchMax: RESOLVER_BATCH_MAX,
    batches,
    batchMs: { median: Math.round(median(batchMs)), max: Math.round(Math.max(0, ...batchMs)) },
    merges: check.merges,
    mergeShare: Math.round((check.merges / events.length) * 1000) / 1000,
    cpuSeconds: { resolverNode: round1(nodeCpu), postgres: round1(postgresCpu), otherProcesses: round1(Math.max(0, otherCpu)) },
    microsPerEvent: Math.round(((nodeCpu + postgresCpu) / events.length) * 1e6),
    // Each person must end as exactly one profile holding all 6 identifiers, every event on it.
    verification: {
      liveProfiles: check.live,
      liveIdentifiers: check.identifiers,
      unresolvedEvents: check.unresolved,
      refusals: check.refusals,
      ok: check.live === people && check.identifiers === people * 6 && check.unresolved === 0 && check.refusals === 0,
    },
    ...(timings ? { statements: timings.slice(0, 15) } : {}),
  };
}

/** A deterministic, random-looking profile id for profile number `i` (SQL expression over `i`). */
const PROFILE_ID = `md5('bench-profile-' || i)::uuid`;

export async function generateLargeDatabase(db: Db, profiles: number, eventCount: number, log: (line: string) => void) {
  const workspace = await createWorkspace(db, { slug: 'bench-read', name: 'Bench profile reads' });
  const { source } = await createSource(db, workspace.id, { name: 'Web shop', kind: 'web' });
  const ws = workspace.id;
  const started = performance.now();
  const step = async (label: string, sql: string, params: unknown[]) => {
    const t = performance.now();
    await db.query(sql, params);
    log(`  ${label}: ${round1((performance.now() - t) / 1000)} s`);
  };
  log(`Generating ${profiles.toLocaleString('en')} profiles and ${eventCount.toLocaleString('en')} events with set-based SQL …`);
  await step(
    'profiles',
    `insert into profiles (workspace_id, id, created_at, updated_at, first_seen, last_seen)
     select $1, ${PROFILE_ID}, $3::timestamptz, $3::timestamptz, $3::timestamptz, $3::timestamptz + interval '300 days'
       from generate_series(1, $2) as i`,
    [ws, profiles, new Date(T0).toISOString()],
  );
  await step(
    'identifiers (user_id, email, anonymous_id per profile)',
    `insert into profile_identifiers (workspace_id, profile_id, type, value, source_id, first_seen, last_seen, linked_by_message_id, linked_via)
     select $1, ${PROFILE_ID}, k.type, case k.type when 'email' then 'member' || i || '@example.com' else k.prefix || i end,
            $3, $4::timestamptz, $4::timestamptz, 'r-' || i, 'event'
       from generate_series(1, $2) as i, (values ('user_id', 'u-'), ('email', ''), ('anonymous_id', 'a-')) as k(type, prefix)`,
    [ws, profiles, source.id, new Date(T0).toISOString()],
  );
  await step(
    'traits (5 per profile)',
    `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
     select $1, ${PROFILE_ID}, k.key,
            case k.key when 'name' then to_jsonb('Customer ' || i) when 'plan' then to_jsonb((array['free','pro','gold'])[1 + i % 3])
                       when 'city' then to_jsonb((array['Shanghai','Beijing','Shenzhen','Hangzhou'])[1 + i % 4])
                       when 'visits' then to_jsonb(i % 97) else jsonb_build_array('t' || (i % 7), 't' || (i % 11)) end,
            'web', 'Web shop', 'r-' || i, $3::timestamptz
       from generate_series(1, $2) as i, (values ('name'), ('plan'), ('city'), ('visits'), ('tags')) as k(key)`,
    [ws, profiles, new Date(T0).toISOString()],
  );

  // 80% of events spread evenly over all profiles; 20% on the busiest 1% (a few hundred each), so
  // the latest-50 page is full for heavy profiles and short for most.
  const months = 12;
  const monthTimes = Array.from({ length: months + 1 }, (_, m) => new Date(Date.UTC(2025, m, 15)));
  await ensureMonthlyPartitions(db, 'events', monthTimes);
  const span = (Date.UTC(2026, 0, 1) - Date.UTC(2025, 0, 1)) / 1000;
  const chunk = 1_000_000;
  const seqBase = 1_000_000_000;
  for (let from = 1; from <= eventCount; from += chunk) {
    const to = Math.min(eventCount, from + chunk - 1);
    await step(
      `events ${from.toLocaleString('en')}–${to.toLocaleString('en')}`,
      `insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, properties, context, received_at, profile_id)
       select $1, ts, $6 + g, 'r-' || g, $3, 'track', (array['Product Viewed','Added to Cart','Order Completed','Page Viewed'])[1 + g % 4],
              jsonb_build_object('sku', 'SKU-' || (g % 5000), 'price', (g % 300) + 0.99),
              jsonb_build_object('library', jsonb_build_object('name', 'analytics.js'), 'ip', '10.0.' || (g % 250) || '.' || (g % 200)),
              ts, md5('bench-profile-' || p)::uuid
         from (select g,
                      timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => ((g::bigint * 7919) % $7)::double precision) as ts,
                      case when g % 5 = 0 then 1 + (g / 5) % greatest(1, $2 / 100) else 1 + (g::bigint * 104729) % $2 end as p
                 from generate_series($4::int, $5::int) as g) as x`,
      [ws, profiles, source.id, from, to, seqBase, span],
    );
  }
  await db.query(`select setval('events_seq', $1)`, [seqBase + eventCount + 1]);
  const vacuumStarted = performance.now();
  await db.query('vacuum analyze profiles, profile_identifiers, profile_traits, events');
  log(`  vacuum analyze: ${round1((performance.now() - vacuumStarted) / 1000)} s`);
  const { rows } = await db.query<{ database: string; events: string }>(
    `select pg_size_pretty(pg_database_size(current_database())) as database,
            pg_size_pretty((select sum(pg_total_relation_size(inhrelid)) from pg_inherits where inhparent = 'events'::regclass)) as events`,
  );
  return { workspaceId: ws, seconds: round1((performance.now() - started) / 1000), sizes: rows[0]! };
}

/**
 * What `GET /v1/profiles/{id}` reads, through the profile API's own functions: the id resolved to
 * its live profile, then the profile row, traits, live identifiers and the latest 50 events.
 */
async function readProfileAsApi(db: Queryable, ws: string, profileId: string, read: ProfileReader = defaultReader) {
  const profile = await read(db, ws, profileId);
  return { traits: Object.keys(profile.traits).length, identifiers: profile.identifiers.length, events: profile.events.length };
}

/** Reads one profile as `GET /v1/profiles/{id}` does; bench/profile-read.ts passes another tree's to compare. */
export type ProfileReader = (
  db: Queryable,
  ws: string,
  profileId: string,
) => Promise<{ traits: Record<string, unknown>; identifiers: unknown[]; events: unknown[] }>;

const defaultReader: ProfileReader = async (db, ws, profileId) =>
  getProfile(db, ws, await locateProfile(db, ws, profileId), { events: TIMELINE_PAGE });

export async function benchReads(db: Db, ws: string, profiles: number, reads: number, read: ProfileReader = defaultReader, seed = 7) {
  const rand = random(seed);
  const heavyProfiles = Math.max(1, Math.floor(profiles / 100));
  const pick = (heavy: boolean) => 1 + Math.floor(rand() * (heavy ? heavyProfiles : profiles));
  const ids = (await db.query<{ i: number; id: string }>(`select i, ${PROFILE_ID} as id from unnest($1::int[]) as i`, [
    Array.from({ length: reads }, (_, k) => pick(k % 2 === 0)),
  ])).rows;
  // Warm-up: connections, plans, the index roots.
  for (const { id } of ids.slice(0, 100)) await readProfileAsApi(db, ws, id, read);
  const latencies: { all: number[]; heavy: number[]; typical: number[] } = { all: [], heavy: [], typical: [] };
  let eventsRead = 0;
  for (const [k, { id }] of ids.entries()) {
    const started = performance.now();
    const result = await readProfileAsApi(db, ws, id, read);
    const ms = performance.now() - started;
    eventsRead += result.events;
    latencies.all.push(ms);
    (k % 2 === 0 ? latencies.heavy : latencies.typical).push(ms);
  }
  const stats = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: percentile(sorted, 100) };
  };
  const all = stats(latencies.all);
  return {
    reads: ids.length,
    latencyMs: all,
    heavyProfilesLatencyMs: stats(latencies.heavy),
    typicalProfilesLatencyMs: stats(latencies.typical),
    averageEventsPerRead: round1(eventsRead / ids.length),
    target: `p99 < ${TARGET_READ_P99_MS} ms`,
    met: all.p99 < TARGET_READ_P99_MS,
  };
}

export async function benchIdentity(options: IdentityBenchOptions = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const eventCount = options.events ?? envCount('BENCH_IDENTITY_EVENTS') ?? 200_000;
  const profiles = options.profiles ?? envCount('BENCH_PROFILES') ?? 1_000_000;
  const profileEvents = options.profileEvents ?? envCount('BENCH_PROFILE_EVENTS') ?? 10_000_000;
  const reads = options.reads ?? envCount('BENCH_PROFILE_READS') ?? 2000;
  const profileStatements = options.profileStatements ?? process.env.BENCH_IDENTITY_PROFILE === '1';
  const host = machine();

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-identity-'));
  // The embedded server runs as an unprivileged user when we are root; it must reach the folder.
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const pgPid = postmasterPid(path.join(dataDir, 'pg'));
  const db = createPool(server.url, 10);
  try {
    await migrate(db);
    // storeEvents enqueues the catalogue job in graphile-worker's tables.
    await runWorkerMigrations({ pgPool: db });
    const { rows: settings } = await db.query<{ name: string; setting: string; unit: string | null }>(
      `select name, setting, unit from pg_settings where name in ('shared_buffers', 'synchronous_commit', 'fsync', 'work_mem')`,
    );
    const resolution = await benchResolution(db, pgPid, eventCount, profileStatements, log);
    log(`  ${resolution.eventsPerSecond.toLocaleString('en')} events/s`);
    const large = await generateLargeDatabase(db, profiles, profileEvents, log);
    log(`Reading ${reads.toLocaleString('en')} profiles …`);
    const readResult = await benchReads(db, large.workspaceId, profiles, reads);
    const summary = [
      `resolution: ${resolution.events.toLocaleString('en')} events (${resolution.people.toLocaleString('en')} people, ${resolution.merges.toLocaleString('en')} merges = ` +
        `${Math.round(resolution.mergeShare * 100)}%) in ${resolution.seconds} s: ${resolution.eventsPerSecond.toLocaleString('en')} events/s ` +
        `(target ≥ ${TARGET_EVENTS_PER_SECOND.toLocaleString('en')}: ${resolution.met ? 'met' : 'MISSED'}); CPU resolver ${resolution.cpuSeconds.resolverNode} s, ` +
        `PostgreSQL ${resolution.cpuSeconds.postgres} s, other processes ${resolution.cpuSeconds.otherProcesses} s; ${resolution.microsPerEvent} µs/event`,
      `graph check: ${resolution.verification.ok ? 'one profile per person with all 6 identifiers, every event resolved' : `MISMATCH ${JSON.stringify(resolution.verification)}`}`,
      `large database: ${profiles.toLocaleString('en')} profiles, ${profileEvents.toLocaleString('en')} events, generated in ${large.seconds} s ` +
        `(database ${large.sizes.database}, events ${large.sizes.events})`,
      `profile read (row + traits + identifiers + latest ${TIMELINE_PAGE} events), ${readResult.reads} random profiles: p50 ${readResult.latencyMs.p50} ms, ` +
        `p99 ${readResult.latencyMs.p99} ms, max ${readResult.latencyMs.max} ms (target p99 < ${TARGET_READ_P99_MS} ms: ${readResult.met ? 'met' : 'MISSED'}); ` +
        `busiest 1% p99 ${readResult.heavyProfilesLatencyMs.p99} ms, others p99 ${readResult.typicalProfilesLatencyMs.p99} ms`,
    ];
    return {
      summary,
      resolution,
      largeDatabase: { profiles, events: profileEvents, ...large },
      reads: readResult,
      postgres: Object.fromEntries(settings.map((s) => [s.name, `${s.setting}${s.unit ? ` ${s.unit}` : ''}`])),
      machine: host,
    };
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const result = await benchIdentity();
  console.log(JSON.stringify(result, null, 2));
}
