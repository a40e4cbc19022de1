/**
 * CPU per resolved event of identity resolution alone, in the identity benchmark's shape (people
 * with 1–4 identifiers per event, 20 % of events merging: bench/identity.ts), for comparing trees
 * back to back on a shared machine.
 *
 *   node --import tsx bench/identity-cpu.ts
 *
 * IDENTITY_TREES: comma-separated tree roots whose resolver (and migrations, storeEvents) to run
 * (default: this tree); with several, they alternate for IDENTITY_ROUNDS (2) rounds, each run on a
 * fresh embedded PostgreSQL. IDENTITY_EVENTS (100,000). IDENTITY_STATEMENTS=1: top statements
 * from pg_stat_statements. IDENTITY_CPU_PROFILE=<file prefix>: a V8 CPU profile of the resolution
 * loop only (open in Chrome DevTools, or summarise with bench/cpu-profile-top.ts).
 * IDENTITY_BATCH_SIZE: events per resolver batch, fixed (default: the loop's drain, createIdentityDrain,
 * where the tree has it: IDENTITY_BATCH growing behind the backlog; else IDENTITY_BATCH).
 */
import fs from 'node:fs';
import inspector from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import { arrivalOrder } from './identity.ts';
import { clusterCpuSeconds, freePort, postmasterPid, processCpuSeconds } from './system.ts';

const HERE = import.meta.dirname;
const trees = (process.env.IDENTITY_TREES ?? path.join(HERE, '..')).split(',').map((tree) => path.resolve(tree));
const rounds = Number(process.env.IDENTITY_ROUNDS ?? 2);
const eventCount = Number(process.env.IDENTITY_EVENTS ?? 100_000);
const statements = process.env.IDENTITY_STATEMENTS === '1';
const cpuProfile = process.env.IDENTITY_CPU_PROFILE;
const batchOverride = process.env.IDENTITY_BATCH_SIZE === undefined ? undefined : Number(process.env.IDENTITY_BATCH_SIZE);
if (batchOverride !== undefined && !(Number.isInteger(batchOverride) && batchOverride > 0)) {
  throw new Error(`IDENTITY_BATCH_SIZE must be a positive integer, got ${process.env.IDENTITY_BATCH_SIZE}`);
}

type Modules = {
  resolver: typeof import('../server/src/identity/resolver.ts');
  loop: typeof import('../server/src/identity/loop.ts');
  settings: typeof import('../server/src/identity/settings-store.ts');
  store: typeof import('../server/src/ingest/store.ts');
  database: typeof import('../server/src/storage/database.ts');
  embedded: typeof import('../server/src/storage/embedded.ts');
  migrate: typeof import('../server/src/storage/migrate.ts');
  workspaces: typeof import('../server/src/workspaces/store.ts');
};

async function load(tree: string): Promise<Modules> {
  const from = (file: string) => import(path.join(tree, 'server/src', file));
  return {
    resolver: await from('identity/resolver.ts'),
    loop: await from('identity/loop.ts'),
    settings: await from('identity/settings-store.ts'),
    store: await from('ingest/store.ts'),
    database: await from('storage/database.ts'),
    embedded: await from('storage/embedded.ts'),
    migrate: await from('storage/migrate.ts'),
    workspaces: await from('workspaces/store.ts'),
  };
}

const events = arrivalOrder(Math.ceil(eventCount / 10));

async function runOnce(tree: string, m: Modules, round: number) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-identity-cpu-'));
  fs.chmodSync(dataDir, 0o755);
  const port = await freePort();
  let server = await m.embedded.startEmbeddedPostgres({ dataDir, port });
  if (statements) {
    const admin = m.database.createPool(server.url, 1);
    await admin.query(`alter system set shared_preload_libraries = 'pg_stat_statements'`);
    await admin.end();
    await server.stop();
    server = await m.embedded.startEmbeddedPostgres({ dataDir, port });
  }
  const pgPid = postmasterPid(path.join(dataDir, 'pg'));
  const db = m.database.createPool(server.url, 10);
  try {
    await m.migrate.migrate(db);
    await runWorkerMigrations({ pgPool: db });
    if (statements) await db.query('create extension if not exists pg_stat_statements');
    const workspace = await m.workspaces.createWorkspace(db, { slug: 'bench-resolve', name: 'Bench resolution' });
    const { source } = await m.workspaces.createSource(db, workspace.id, { name: 'Web shop', kind: 'web' });
    await m.settings.saveWorkspaceIdentity(db, workspace.id, { traitStrategies: { traits: { visits: { kind: 'sum' } } } });
    for (let start = 0; start < events.length; start += 1000) {
      await m.store.storeEvents(db, { workspaceId: workspace.id, sourceId: source.id }, events.slice(start, start + 1000));
    }
    await db.query('vacuum analyze events, identity_queue, event_message_ids');
    await db.query('checkpoint');
    if (statements) await db.query('select pg_stat_statements_reset()');
    const session = cpuProfile ? new inspector.Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const node0 = processCpuSeconds();
    const pg0 = clusterCpuSeconds(pgPid);
    const started = performance.now();
    // Trees before the growing batch have createIdentityDrain too, with a fixed batch: the same as below.
    if (batchOverride === undefined) {
      const drain = m.loop.createIdentityDrain(db);
      while ((await drain()) > 0);
    } else {
      while ((await m.resolver.resolveQueuedEvents(db, workspace.id, batchOverride ?? m.loop.IDENTITY_BATCH)) > 0);
    }
    const seconds = (performance.now() - started) / 1000;
    const node = processCpuSeconds() - node0;
    const postgres = clusterCpuSeconds(pgPid) - pg0;
    if (session) {
      const { profile } = await session.post('Profiler.stop');
      fs.writeFileSync(`${cpuProfile}-${path.basename(tree)}-${round}.cpuprofile`, JSON.stringify(profile));
      session.disconnect();
    }
    const { rows } = await db.query<{ live: number; identifiers: number; unresolved: number; refusals: number; merges: number; history: number; traits: number }>(
      `select (select count(*)::int from profiles where workspace_id = $1 and merged_into is null) as live,
              (select count(*)::int from profile_identifiers where workspace_id = $1 and unbound_at is null) as identifiers,
              (select count(*)::int from events where workspace_id = $1 and profile_id is null) as unresolved,
              (select count(*)::int from identity_refusals where workspace_id = $1) as refusals,
              (select count(*)::int from identity_merges where workspace_id = $1) as merges,
              (select count(*)::int from profile_trait_history where workspace_id = $1) as history,
              (select count(*)::int from profile_traits where workspace_id = $1) as traits`,
      [workspace.id],
    );
    // Updates kept on their page (heap-only: no index entries) against all updates, per table.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const { rows: hot } = await db.query<{ relname: string; upd: number; hot: number }>(
      `select relname, n_tup_upd::int as upd, n_tup_hot_upd::int as hot from pg_stat_user_tables
        where relname in ('profile_identifiers', 'profiles', 'profile_traits') order by relname`,
    );
    const us = (s: number) => Math.round((s / events.length) * 1e6);
    const result = {
      tree,
      round,
      events: events.length,
      batch: batchOverride ?? `drain ${m.loop.IDENTITY_BATCH}–${(m.loop as { IDENTITY_BATCH_MAX?: number }).IDENTITY_BATCH_MAX ?? m.loop.IDENTITY_BATCH}`,
      eventsPerSecond: Math.round(events.length / seconds),
      cpuSeconds: { node: Math.round(node * 10) / 10, postgres: Math.round(postgres * 10) / 10 },
      microsPerEvent: { node: us(node), postgres: us(postgres), total: us(node + postgres) },
      check: rows[0],
      hotUpdates: Object.fromEntries(hot.map((row) => [row.relname, `${row.hot}/${row.upd}`])),
      load: os.loadavg().map((v) => Math.round(v * 10) / 10),
    };
    console.log(JSON.stringify(result));
    if (statements) {
      const { rows: top } = await db.query<{ query: string; calls: number; ms: number; rows: number; hit: number; dirtied: number; wal: string }>(
        `select left(regexp_replace(query, '\\s+', ' ', 'g'), 120) as query, calls::int, round(total_exec_time)::int as ms, rows::int,
                shared_blks_hit::int as hit, shared_blks_dirtied::int as dirtied, wal_bytes::bigint as wal
           from pg_stat_statements order by total_exec_time desc limit 20`,
      );
      console.log('   ms  calls    rows      hit  dirty  WAL/ev  statement');
      for (const row of top) {
        console.log(`${String(row.ms).padStart(6)} ${String(row.calls).padStart(6)} ${String(row.rows).padStart(7)} ${String(row.hit).padStart(8)} ${String(row.dirtied).padStart(6)} ${String(Math.round(Number(row.wal) / events.length)).padStart(6)}  ${row.query}`);
      }
    }
    return result;
  } finally {
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const modules = new Map<string, Modules>();
for (const tree of trees) modules.set(tree, await load(tree));
for (let round = 1; round <= rounds; round++) {
  const order = round % 2 === 1 ? trees : [...trees].reverse();
  for (const tree of order) await runOnce(tree, modules.get(tree)!, round);
}
