/**
 * The segment benchmark's phases (c) and (d) on a kept data folder, so the retail data is
 * generated once and every change is measured on the same rows, back to back:
 *
 *   BENCH_SEGMENT_DATA_DIR=/tmp/seg-250k BENCH_SEGMENT_PROFILES=250000 BENCH_SEGMENT_EVENTS=5000000 \
 *     node --import tsx bench/segments-kept.ts prepare      # generate + create the 20 real-time segments
 *   BENCH_SEGMENT_DATA_DIR=/tmp/seg-250k node --import tsx bench/segments-kept.ts incremental   # (c)
 *   BENCH_SEGMENT_DATA_DIR=/tmp/seg-250k node --import tsx bench/segments-kept.ts realtime      # (d)
 *
 * `incremental` queues BENCH_SEGMENT_QUEUE (20,000) profiles picked by a hash salted with
 * BENCH_KEPT_SALT (a new one each run unless given) and drains them with drainSegmentQueue at the
 * data's `now` (the clock the segments were computed with, so a profile's answer is the stored one:
 * the steady state of a profile queued by a change that moves nothing), reporting CPU µs per
 * re-evaluation of Node and PostgreSQL and the top statements (pg_stat_statements).
 * `realtime` runs bench/segments.ts's phase (d) (BENCH_SEGMENT_RATE, BENCH_SEGMENT_SECONDS).
 * Both take BENCH_KEPT_DIGESTS=on (the drain reads event digests; TOUCHPOINT_SEGMENT_DIGESTS=on for
 * `realtime`'s worker) or =build (the same, every digest built in one pass first), and
 * BENCH_KEPT_PREWARM=1 (what the drain reads loaded into shared buffers first). `incremental` drains as the worker
 * does, DRAIN_PARTS parts at once (BENCH_KEPT_PARALLEL=0: one batch at a time, as before), and takes
 * BENCH_KEPT_NEW_EVENTS=n (n new events of each queued profile stored first, see storeNewEvents).
 * `preview` runs bench/segments.ts's phase (b): each of the 20 segments counted in full (the
 * truth), then previewed BENCH_PREVIEW_RUNS (3) times at the data's `now`: estimate, interval,
 * whether it holds the true size, time; with the CPU PostgreSQL and Node used
 * (BENCH_PREVIEW_ONLY=key,key: some of them; BENCH_PREVIEW_EXACT_MS=0: no exact count attempted).
 * The data folder is left for the next run; delete it when done.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import { encryptAllExistingPii } from '../server/src/privacy/pii-backfill.ts';
import { buildWorkspaceDigests } from '../server/src/segments/digests.ts';
import { drainSegmentQueue, workspaceDigestSpec } from '../server/src/segments/realtime.ts';
import { createPool, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { parseSegment } from '../server/src/segments/language/parse.ts';
import { compileSegmentQuery } from '../server/src/segments/sql/compile.ts';
import { listLiveSegments, segmentIdsByKey } from '../server/src/segments/store.ts';
import { benchPreview, benchRealtime, createSegments } from './segments.ts';
import { segmentCatalogue } from './segments-catalogue.ts';
import { generateRetailData } from './segments-data.ts';
import { clusterCpuSeconds, clusterKernelUsage, freePort, machine, postmasterPid, processCpuSeconds } from './system.ts';

interface Meta {
  workspaceId: string;
  now: string;
  writeKey: string;
  profiles: number;
  events: number;
}

const log = (line: string) => console.error(line);

function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

async function open(dataDir: string) {
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const pgPid = postmasterPid(path.join(dataDir, 'pg'));
  const db = createPool(server.url);
  await migrate(db);
  await runWorkerMigrations({ pgPool: db });
  return { server, db, pgPid };
}

async function prepare(dataDir: string) {
  const metaFile = path.join(dataDir, 'meta.json');
  if (fs.existsSync(metaFile)) throw new Error(`${dataDir} already holds data (meta.json); delete the folder to generate again`);
  fs.mkdirSync(dataDir, { recursive: true });
  fs.chmodSync(dataDir, 0o755);
  const profiles = envCount('BENCH_SEGMENT_PROFILES', 250_000);
  const events = envCount('BENCH_SEGMENT_EVENTS', profiles * 20);
  const { server, db } = await open(dataDir);
  try {
    const workspace = await createWorkspace(db, { slug: 'bench-segments', name: 'Bench retail segments', timeZone: 'Asia/Shanghai' });
    await db.query(`alter system set max_wal_size = '16GB'`);
    await db.query('select pg_reload_conf()');
    const data = await generateRetailData(db, { workspaceId: workspace.id, profiles, events, seed: 20261123, log });
    await db.query('alter system reset max_wal_size');
    // Read at the next start: the runs report their top statements.
    await db.query(`alter system set shared_preload_libraries = 'pg_stat_statements'`);
    await db.query('select pg_reload_conf()');
    await db.query('checkpoint');
    const now = new Date(data.now);
    log('Creating the 20 segments as real-time segments …');
    const created = await createSegments(db, workspace.id, segmentCatalogue(now), now, log);
    // The re-checks creating them made due are postponed (as bench/segments.ts does after (c)), so
    // each run measures the profiles it queues.
    await db.query(`update segment_rechecks set due_at = due_at + interval '1 day' where workspace_id = $1 and due_at <= $2`, [workspace.id, now]);
    await db.query('vacuum analyze');
    const meta: Meta = { workspaceId: workspace.id, now: data.now, writeKey: data.sources.app.writeKey, profiles, events };
    fs.writeFileSync(metaFile, JSON.stringify(meta, null, 2));
    log(`prepared: generation ${data.seconds} s, segments ${created.seconds} s`);
  } finally {
    await db.end();
    await server.stop();
  }
}

async function topStatements(db: Db, limit = 12) {
  const { rows } = await db.query<{ calls: string; total_ms: number; mean_ms: number; rows: string; blks: string; query: string }>(
    `select calls, round(total_exec_time::numeric, 1)::float8 as total_ms, round(mean_exec_time::numeric, 3)::float8 as mean_ms, rows,
            shared_blks_hit + shared_blks_read as blks, regexp_replace(left(query, 220), '\\s+', ' ', 'g') as query
       from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
      order by total_exec_time desc limit $1`,
    [limit],
  );
  return rows;
}

/**
 * BENCH_KEPT_PREWARM=1: reads what the drain reads into shared buffers first (pg_prewarm), the
 * steady state of a server that has run for a while, which a run right after start is not: the
 * events partitions' heaps, then their profile-timeline index (the only events index the drain
 * uses), then the per-profile tables and all their indexes, so with buffers smaller than all of it
 * the last-read (smaller, hotter) ones stay.
 */
async function prewarm(db: Db): Promise<{ seconds: number; megabytes: number }> {
  const started = performance.now();
  await db.query('create extension if not exists pg_prewarm');
  const { rows } = await db.query<{ blocks: string }>(
    `with parts as (select inhrelid as oid from pg_inherits where inhparent = 'events'::regclass),
     small(name, ord) as (values ('profiles', 3), ('profile_identifiers', 4), ('profile_traits', 5), ('profile_consents', 6),
                                 ('segment_memberships', 7), ('segment_rechecks', 8), ('segment_event_digests', 9)),
     rels as (
       select oid, 1 as ord from parts
       union all select inhrelid, 2 from pg_inherits where inhparent = 'events_profile_timeline'::regclass
       union all select s.name::regclass::oid, s.ord * 2 from small s
       union all select i.indexrelid, s.ord * 2 + 1 from small s join pg_index i on i.indrelid = s.name::regclass)
     select coalesce(sum(w.blocks), 0)::text as blocks
       from (select pg_prewarm(oid) as blocks from (select oid from rels order by ord offset 0) r) w`,
  );
  const megabytes = Math.round((Number(rows[0]!.blocks) * 8) / 1024);
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  log(`prewarmed ${megabytes} MB in ${seconds} s`);
  return { seconds, megabytes };
}

/**
 * BENCH_KEPT_DIGESTS=build: builds every profile's event digest in one pass first (only where the
 * workspace's digests do not match the current spec), i.e. the state of a server whose drain has
 * read each profile once since the real-time segments were made; otherwise the first read of each
 * profile pays its build.
 */
const useDigests = process.env.BENCH_KEPT_DIGESTS === 'on' || process.env.BENCH_KEPT_DIGESTS === 'build';

async function buildDigests(db: Db, workspaceId: string): Promise<{ seconds: number; digests: number } | null> {
  if (process.env.BENCH_KEPT_DIGESTS !== 'build') return null;
  const spec = await workspaceDigestSpec(db, workspaceId);
  if (!spec) return null;
  const started = performance.now();
  const { rows } = await db.query<{ stale: boolean }>(
    `select exists (select 1 from profiles p where p.workspace_id = $1 and p.merged_into is null and not exists (
       select 1 from segment_event_digests d join segment_event_digest_specs s on s.workspace_id = d.workspace_id and s.version = d.spec_version
        where d.workspace_id = $1 and d.profile_id = p.id and d.complete)) as stale`,
    [workspaceId],
  );
  const digests = rows[0]!.stale ? await buildWorkspaceDigests(db, workspaceId, spec) : 0;
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  log(`event digests: ${digests} built in ${seconds} s`);
  await db.query('vacuum analyze segment_event_digests');
  return { seconds, digests };
}

/**
 * BENCH_KEPT_NEW_EVENTS=n: before the drain, each queued profile gets n new events (copies of its
 * latest event of a kind the segments read, digests on or off), stored 100 rows
 * a statement like ingest requests of known people, so the drain re-evaluates profiles with new
 * events: with digests on, what their triggers wrote is read (and, with appends, folded). Reports
 * the PostgreSQL CPU and WAL per stored event (the triggers' share of ingest cost).
 */
async function storeNewEvents(db: Db, pgPid: number, workspaceId: string, perProfile: number) {
  if (perProfile === 0) return null;
  const { rows: queued } = await db.query<{ profile_id: string }>('select profile_id from segment_queue where workspace_id = $1 order by profile_id', [workspaceId]);
  // The kinds the segments read, whether digests are on or not, so both store the same events.
  const kinds = (await workspaceDigestSpec(db, workspaceId))?.kinds ?? ['track:*'];
  const ids = queued.map((row) => row.profile_id);
  await db.query('checkpoint');
  const { rows: lsn } = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  const pg0 = clusterCpuSeconds(pgPid);
  let stored = 0;
  for (let round = 0; round < perProfile; round++) {
    for (let start = 0; start < ids.length; start += 100) {
      const { rowCount } = await db.query(
        `insert into events (workspace_id, timestamp, message_id, source_id, type, event, name, user_id, anonymous_id, properties, context, received_at, profile_id)
         select e.workspace_id, e.timestamp + interval '1 second', 'bench-new-' || md5(e.message_id || $3::text), e.source_id, e.type, e.event, e.name,
                e.user_id, e.anonymous_id, e.properties, e.context, now(), e.profile_id
           from unnest($2::uuid[]) as p(id)
           cross join lateral (select * from events e where e.workspace_id = $1 and e.profile_id = p.id and segment_digest_wants($4::text[], e.type, e.event, e.name)
                                order by e.timestamp desc limit 1) e`,
        [workspaceId, ids.slice(start, start + 100), `${round}-${crypto.randomBytes(4).toString('hex')}`, kinds],
      );
      stored += rowCount ?? 0;
    }
  }
  const postgresSeconds = clusterCpuSeconds(pgPid) - pg0;
  const { rows: wal } = await db.query<{ bytes: string }>('select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint::text as bytes', [lsn[0]!.lsn]);
  const { rows: kept } = await db.query<{ appends: boolean }>(`select to_regclass('segment_digest_appends') is not null as appends`);
  const { rows: appends } = kept[0]!.appends
    ? await db.query<{ n: string }>('select count(*)::text as n from segment_digest_appends')
    : { rows: [{ n: null }] };
  const result = {
    stored,
    postgresMicrosPerEvent: Math.round((postgresSeconds / stored) * 1e6),
    walBytesPerEvent: Math.round(Number(wal[0]!.bytes) / stored),
    pendingAppends: appends[0]!.n === null ? null : Number(appends[0]!.n),
  };
  log(`new events: ${JSON.stringify(result)}`);
  return result;
}

async function incremental(dataDir: string, meta: Meta) {
  const { server, db, pgPid } = await open(dataDir);
  try {
    const ws = meta.workspaceId;
    const now = new Date(meta.now);
    const count = envCount('BENCH_SEGMENT_QUEUE', 20_000);
    const batchSize = envCount('BENCH_SEGMENT_BATCH', 500);
    const salt = process.env.BENCH_KEPT_SALT ?? crypto.randomBytes(4).toString('hex');
    // BENCH_KEPT_PARALLEL=0: one drain at a time (as before); otherwise the worker's parallel parts.
    const parallel = process.env.BENCH_KEPT_PARALLEL !== '0';
    await db.query(`update segment_rechecks set due_at = $2::timestamptz + interval '1 day' where workspace_id = $1 and due_at <= $2`, [ws, now]);
    const { rowCount } = await db.query(
      `insert into segment_queue (workspace_id, profile_id, queued_at)
       select $1, id, now() from profiles where workspace_id = $1 and merged_into is null order by md5(id::text || $3) limit $2
       on conflict do nothing`,
      [ws, count, salt],
    );
    await db.query('vacuum analyze segment_queue, segment_rechecks');
    await db.query('create extension if not exists pg_stat_statements');
    const digestBuild = await buildDigests(db, ws);
    const prewarmed = process.env.BENCH_KEPT_PREWARM === '1' ? await prewarm(db) : null;
    const newEvents = await storeNewEvents(db, pgPid, ws, envCount('BENCH_KEPT_NEW_EVENTS', 0));
    // The pages dirtied before (the queue fill, the re-check postponement, a digest build) written
    // now, so a checkpoint's writes and the full-page images after it are not counted as the drain's.
    await db.query('checkpoint');
    await db.query('select pg_stat_statements_reset()');
    const { rows: before } = await db.query<{ id: string | null }>('select max(id) as id from segment_transitions where workspace_id = $1', [ws]);
    log(`${rowCount} profiles queued (salt ${salt}); draining in batches of ${batchSize} at now = ${meta.now} …`);
    // BENCH_KEPT_CPU_PROFILE=<file>: a V8 CPU profile of the drain alone (bench/cpu-profile-top.ts reads it).
    const profileFile = process.env.BENCH_KEPT_CPU_PROFILE;
    const session = profileFile ? new inspector.Session() : null;
    const post = (method: string) => new Promise<unknown>((resolve, reject) => session!.post(method, (error, result) => (error ? reject(error) : resolve(result))));
    if (session) {
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.start');
    }
    const node0 = processCpuSeconds();
    const pg0 = clusterCpuSeconds(pgPid);
    const kernel0 = clusterKernelUsage(pgPid);
    const started = performance.now();
    let evaluated = 0;
    for (;;) {
      const taken = await drainSegmentQueue(db, { batchSize, now, digests: useDigests, parallel });
      if (taken === 0) break;
      evaluated += taken;
    }
    const seconds = (performance.now() - started) / 1000;
    if (session) {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      fs.writeFileSync(profileFile!, JSON.stringify(profile));
      session.disconnect();
    }
    const nodeSeconds = processCpuSeconds() - node0;
    const postgresSeconds = clusterCpuSeconds(pgPid) - pg0;
    const kernel1 = clusterKernelUsage(pgPid);
    const { rows: after } = await db.query<{ n: number }>('select count(*)::int as n from segment_transitions where workspace_id = $1 and id > $2', [
      ws,
      before[0]?.id ?? 0,
    ]);
    const statements = await topStatements(db);
    const { rows: blocks } = await db.query<{ hit: string; read: string }>(
      `select sum(shared_blks_hit)::text as hit, sum(shared_blks_read)::text as read
         from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())`,
    );
    const { rows: sharedBuffers } = await db.query<{ shared_buffers: string }>('show shared_buffers');
    const result = {
      benchmark: 'segments-kept incremental',
      at: new Date().toISOString(),
      load: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
      machine: machine(),
      profiles: meta.profiles,
      events: meta.events,
      queued: rowCount,
      evaluated,
      batchSize,
      parallel,
      seconds: Math.round(seconds * 10) / 10,
      perSecond: Math.round(evaluated / seconds),
      nodeSeconds: Math.round(nodeSeconds * 10) / 10,
      postgresSeconds: Math.round(postgresSeconds * 10) / 10,
      microsPerProfile: {
        node: Math.round((nodeSeconds / evaluated) * 1e6),
        postgres: Math.round((postgresSeconds / evaluated) * 1e6),
        total: Math.round(((nodeSeconds + postgresSeconds) / evaluated) * 1e6),
      },
      // Of PostgreSQL's live backends (exited ones are in postgres only): kernel CPU and minor page faults.
      postgresKernel: {
        microsPerProfile: Math.round(((kernel1.systemSeconds - kernel0.systemSeconds) / evaluated) * 1e6),
        minorFaultsPerProfile: Math.round(((kernel1.minorFaults - kernel0.minorFaults) / evaluated) * 10) / 10,
      },
      perCpuSecond: Math.round(evaluated / (nodeSeconds + postgresSeconds)),
      transitions: after[0]!.n,
      sharedBuffers: sharedBuffers[0]!.shared_buffers,
      digestBuild,
      prewarmed,
      newEvents,
      // Pages per re-evaluation, all statements: found in shared buffers, and read from outside them.
      buffersPerProfile: {
        hit: Math.round((Number(blocks[0]!.hit) / evaluated) * 10) / 10,
        read: Math.round((Number(blocks[0]!.read) / evaluated) * 10) / 10,
      },
      statements,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await db.end();
    await server.stop();
  }
}

/**
 * The generator writes identifiers and traits in plaintext, as data from before field encryption;
 * the worker's start-up backfill then seals them while the load runs (a one-time upgrade step),
 * holding the identity lock in its batches: the first real-time run on a folder measured that
 * (event → membership p50 24 s at 1M). It is run to the end first, then once more so the workspace
 * is marked clean and the worker's own pass skips it.
 */
async function finishPiiBackfill(db: Db): Promise<{ seconds: number; passes: number; encrypted: number }> {
  const started = performance.now();
  let encrypted = 0;
  let passes = 0;
  for (;;) {
    passes++;
    const { totals, workspaces } = await encryptAllExistingPii(db);
    encrypted += Object.values(totals).reduce((sum, n) => sum + n, 0);
    // Done when every workspace was marked clean by an earlier pass (none walked).
    if (workspaces === 0 || passes >= 4) break;
  }
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  log(`PII backfill before the load: ${encrypted} values sealed in ${passes} pass(es), ${seconds} s`);
  return { seconds, passes, encrypted };
}

async function realtime(dataDir: string, meta: Meta) {
  const { server, db, pgPid } = await open(dataDir);
  try {
    await db.query('create extension if not exists pg_stat_statements');
    const piiBackfill = await finishPiiBackfill(db);
    const digestBuild = await buildDigests(db, meta.workspaceId);
    const prewarmed = process.env.BENCH_KEPT_PREWARM === '1' ? await prewarm(db) : null;
    const { rows: sharedBuffers } = await db.query<{ shared_buffers: string }>('show shared_buffers');
    await db.query('select pg_stat_statements_reset()');
    const eventsPerSecond = envCount('BENCH_SEGMENT_RATE', 2000);
    const seconds = envCount('BENCH_SEGMENT_SECONDS', 60);
    const load = fs.readFileSync('/proc/loadavg', 'utf8').trim();
    const result = await benchRealtime(db, server.url, meta.workspaceId, meta.writeKey, pgPid, { eventsPerSecond, seconds }, log);
    const statements = await topStatements(db, 15);
    console.log(JSON.stringify({ benchmark: 'segments-kept realtime', at: new Date().toISOString(), loadAtStart: load, sharedBuffers: sharedBuffers[0]!.shared_buffers, piiBackfill, digestBuild, prewarmed, profiles: meta.profiles, events: meta.events, ...result, statements }, null, 2));
  } finally {
    await db.end();
    await server.stop();
  }
}

async function preview(dataDir: string, meta: Meta) {
  const { server, db, pgPid } = await open(dataDir);
  try {
    const ws = meta.workspaceId;
    const now = new Date(meta.now);
    const runs = envCount('BENCH_PREVIEW_RUNS', 3);
    const only = process.env.BENCH_PREVIEW_ONLY?.split(',');
    const cases = segmentCatalogue(now).filter((c) => !only || only.includes(c.key));
    const segmentIds = segmentIdsByKey(await listLiveSegments(db, ws));
    const truth = new Map<string, { count: number; query: { text: string; values: unknown[] } }>();
    // BENCH_PREVIEW_TRUTH=memberships: the members `prepare` computed at `now` (the same answer, measured
    // equal on the 1M data) instead of counting each segment again.
    const fromMemberships = process.env.BENCH_PREVIEW_TRUTH === 'memberships';
    log(`${fromMemberships ? 'Reading' : 'Counting'} the ${cases.length} segments' members at ${meta.now} …`);
    for (const c of cases) {
      if (fromMemberships) {
        const segmentId = segmentIds.get(c.key);
        if (!segmentId) throw new Error(`segment ${c.key} was not created by prepare`);
        const query = { text: 'select profile_id from segment_memberships where workspace_id = $1 and segment_id = $2', values: [ws, segmentId] };
        const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from (${query.text}) t`, query.values);
        truth.set(c.key, { count: rows[0]!.n, query });
        continue;
      }
      const parsed = parseSegment(c.text);
      if (!parsed.ok) throw new Error(`${c.key}: ${parsed.error.message}`);
      const query = compileSegmentQuery(parsed.condition, { workspaceId: ws, now, segmentIds });
      const started = performance.now();
      const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from (${query.text}) t`, query.values);
      truth.set(c.key, { count: rows[0]!.n, query });
      log(`  ${c.key}: ${rows[0]!.n} in ${Math.round(performance.now() - started)} ms`);
    }
    const load = fs.readFileSync('/proc/loadavg', 'utf8').trim();
    const node0 = processCpuSeconds();
    const pg0 = clusterCpuSeconds(pgPid);
    log(`Previewing, ${runs} runs each (load ${load}) …`);
    // BENCH_PREVIEW_EXACT_MS=0: the sampled estimate alone (as when counting never finishes in time).
    const exactRaw = process.env.BENCH_PREVIEW_EXACT_MS;
    const options = exactRaw === undefined || exactRaw === '' ? {} : { exactBudgetMs: Number(exactRaw) };
    const previews = await benchPreview(db, ws, cases, now, truth, runs, log, options);
    const times = previews.flatMap((p) => p.runs.map((r) => r.wallMs)).sort((a, b) => a - b);
    console.log(
      JSON.stringify(
        {
          benchmark: 'segments-kept preview',
          at: new Date().toISOString(),
          loadAtStart: load,
          loadAtEnd: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
          machine: machine(),
          profiles: meta.profiles,
          events: meta.events,
          runs,
          options,
          cpuSeconds: { node: Math.round((processCpuSeconds() - node0) * 10) / 10, postgres: Math.round((clusterCpuSeconds(pgPid) - pg0) * 10) / 10 },
          wallMs: { p50: times[Math.floor((times.length - 1) / 2)], max: times.at(-1) },
          covered: `${previews.filter((p) => p.covered).length}/${previews.length}`,
          previews,
        },
        null,
        2,
      ),
    );
  } finally {
    await db.end();
    await server.stop();
  }
}

const command = process.argv[2];
const dataDir = process.env.BENCH_SEGMENT_DATA_DIR;
if (!dataDir) throw new Error('BENCH_SEGMENT_DATA_DIR must name the kept data folder');
if (command === 'prepare') {
  await prepare(dataDir);
} else if (command === 'incremental' || command === 'realtime' || command === 'preview') {
  const metaFile = path.join(dataDir, 'meta.json');
  if (!fs.existsSync(metaFile)) throw new Error(`${dataDir} holds no prepared data: run "prepare" first`);
  const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as Meta;
  if (command === 'incremental') await incremental(dataDir, meta);
  else if (command === 'preview') await preview(dataDir, meta);
  else await realtime(dataDir, meta);
} else {
  throw new Error('usage: bench/segments-kept.ts prepare | incremental | realtime | preview');
}
