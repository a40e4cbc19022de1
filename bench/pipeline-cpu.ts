/**
 * CPU per event of the collection path and of identity resolution, each measured alone, for
 * comparing two trees on a loaded machine (wall-clock numbers there say more about the neighbours).
 *
 *   node --import tsx bench/pipeline-cpu.ts            # PIPELINE_EVENTS (default 51,200) per round
 *
 * Round 1 sends the ingest benchmark's events (bench/events.ts; 256 templates of 100 events) to
 * POST /v1/batch of the real server with no worker running (16 connections, a forked client),
 * then resolves the whole identity backlog with the worker's drain. Most people are new in round
 * 1; round 2 sends the same templates again (people known, as in steady state). For each round:
 * server + client + PostgreSQL CPU per event while storing, and Node + PostgreSQL CPU per event
 * while resolving.
 *
 * PIPELINE_DIGESTS=on: the segment drain's event digests are kept (segments/digests.ts), with the
 * widest spec (every event, every property); after each round's identity phase (not measured) the
 * workspace's digests are built in one pass, so round 2 stores events of profiles whose digests
 * are complete, as in steady state with real-time segments.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { buildServer } from '../server/src/api/server.ts';
import { createIdentityDrain } from '../server/src/identity/loop.ts';
import { buildWorkspaceDigests, currentSpecVersion, type DigestSpec } from '../server/src/segments/digests.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';
import type { ClientConfig, ClientReport } from './client.ts';
import { clusterCpuSeconds, forkTs, freePort, postmasterPid, processCpuSeconds } from './system.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// Garbage collection in this (the server's) process: pause time summed from V8's gc entries.
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });
const events = Number(process.env.PIPELINE_EVENTS ?? 51_200);

async function sendEvents(config: ClientConfig): Promise<ClientReport> {
  const child = forkTs(path.join(HERE, 'client.ts'), [JSON.stringify(config)]);
  const message = () => new Promise<unknown>((resolve) => child.once('message', resolve));
  if ((await message()) !== 'ready') throw new Error('client did not start');
  child.send('go');
  const answer = (await message()) as { report?: ClientReport; error?: string };
  if (!answer.report) throw new Error(answer.error);
  const failed = Object.values(answer.report.failures).reduce((a, b) => a + b, 0);
  if (failed > 0 || answer.report.accepted !== config.events) throw new Error(`requests failed: ${answer.report.firstFailure}`);
  return answer.report;
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-pipeline-'));
fs.chmodSync(dataDir, 0o755);
const port = await freePort();
let pg = await startEmbeddedPostgres({ dataDir, port });
// PIPELINE_STATEMENTS=1: per-statement database time, blocks and WAL (pg_stat_statements, loaded at start).
const statements = process.env.PIPELINE_STATEMENTS === '1';
// PIPELINE_PG_SETTINGS="name=value,name=value": server settings on top of the embedded ones (A/B of a setting on one tree).
const extraSettings = (process.env.PIPELINE_PG_SETTINGS ?? '').split(',').filter(Boolean).map((pair) => {
  const [name, ...value] = pair.split('=');
  if (!name || !/^[a-z_]+$/.test(name) || value.length === 0) throw new Error(`PIPELINE_PG_SETTINGS: bad "${pair}"`);
  return { name, value: value.join('=') };
});
if (statements || extraSettings.length > 0) {
  const admin = createPool(pg.url, 1);
  if (statements) await admin.query(`alter system set shared_preload_libraries = 'pg_stat_statements'`);
  for (const { name, value } of extraSettings) await admin.query(`alter system set ${name} = '${value.replaceAll("'", "''")}'`);
  await admin.end();
  await pg.stop();
  pg = await startEmbeddedPostgres({ dataDir, port });
}
const pgPid = postmasterPid(path.join(dataDir, 'pg'));
// PIPELINE_SOCKET=1: the pool connects over the cluster's Unix socket (/tmp) instead of TCP on 127.0.0.1.
const db = createPool(process.env.PIPELINE_SOCKET === '1' ? `${pg.url.replace('@127.0.0.1:' + port, '@')}?host=/tmp&port=${port}` : pg.url);
const walPosition = async () => (await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
const walBytes = async (from: string) => Number((await db.query<{ n: string }>('select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint as n', [from])).rows[0]!.n);
async function topStatements(label: string): Promise<void> {
  if (!statements) return;
  const { rows } = await db.query<{ query: string; calls: number; ms: number; rows: number; hit: number; dirtied: number; wal: number }>(
    `select left(regexp_replace(query, '\\s+', ' ', 'g'), 110) as query, calls::int, round(total_exec_time)::int as ms, rows::int,
            shared_blks_hit::int as hit, shared_blks_dirtied::int as dirtied, wal_bytes::bigint as wal
       from pg_stat_statements order by total_exec_time desc limit 12`,
  );
  console.log(`-- ${label}: top statements (ms wall, rows, blocks hit, dirtied, WAL bytes per event)`);
  for (const row of rows) {
    console.log(`${String(row.ms).padStart(7)} ${String(row.calls).padStart(6)} ${String(row.rows).padStart(7)} ${String(row.hit).padStart(8)} ${String(row.dirtied).padStart(6)} ${String(Math.round(Number(row.wal) / events)).padStart(6)}  ${row.query}`);
  }
  await db.query('select pg_stat_statements_reset()');
}
try {
  await migrate(db);
  // PIPELINE_DROP_INDEXES=a,b: the same run without these indexes on events (bisecting their cost).
  for (const index of (process.env.PIPELINE_DROP_INDEXES ?? '').split(',').filter(Boolean)) {
    await db.query(`drop index ${index.replace(/[^a-z0-9_]/g, '')}`);
    console.log(`dropped index ${index}`);
  }
  console.log(`load at start ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const { rows: shown } = await db.query<{ name: string; setting: string; unit: string | null }>(
    `select name, setting, unit from pg_settings where name in
       ('wal_compression', 'wal_buffers', 'commit_delay', 'commit_siblings', 'wal_writer_delay', 'wal_writer_flush_after', 'synchronous_commit', 'shared_buffers')`,
  );
  console.log(`settings ${shown.map((row) => `${row.name}=${row.setting}${row.unit ?? ''}`).join(' ')}`);
  if (statements) await db.query('create extension if not exists pg_stat_statements');
  const workspace = await createWorkspace(db, { slug: 'bench', name: 'Bench retail' });
  const { writeKey } = await createSource(db, workspace.id, { name: 'Web shop', kind: 'web' });
  const digests: DigestSpec | null = process.env.PIPELINE_DIGESTS === 'on' ? { kinds: ['page:*', 'screen:*', 'track:*'], keys: null } : null;
  if (digests) console.log(`digests on, spec version ${await currentSpecVersion(db, workspace.id, digests)}`);
  const app = await buildServer({ db, verifyAdmin: () => false, logLevel: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1/batch`;
  const drain = createIdentityDrain(db);
  const results = [];
  // PIPELINE_ROUNDS (default 2): round 1 mostly new people, later rounds the same people again.
  const rounds = Number(process.env.PIPELINE_ROUNDS ?? 2);
  for (let round = 1; round <= rounds; round++) {
    await db.query('checkpoint');
    if (statements) await db.query('select pg_stat_statements_reset()');
    const wal0 = await walPosition();
    const node0 = processCpuSeconds();
    const pg0 = clusterCpuSeconds(pgPid);
    const gc0 = gcMs;
    const report = await sendEvents({ url, writeKey: writeKey.key, runTag: crypto.randomBytes(4).toString('hex'), events, batchSize: 100, connections: 16 });
    const ingest = { server: processCpuSeconds() - node0, client: report.cpuSeconds, postgres: clusterCpuSeconds(pgPid) - pg0 };
    const ingestWal = await walBytes(wal0);
    const ingestGcMs = gcMs - gc0;
    await topStatements(`round ${round} ingest`);
    const wal1 = await walPosition();
    const node1 = processCpuSeconds();
    const pg1 = clusterCpuSeconds(pgPid);
    let resolved = 0;
    // PIPELINE_IDENTITY=0: ingest only (e.g. for a CPU profile of the request path); round 2 then stores unknown people again.
    if (process.env.PIPELINE_IDENTITY !== '0') {
      for (let taken = await drain(); taken > 0 || resolved < events; taken = await drain()) resolved += taken;
    }
    const identity = { node: processCpuSeconds() - node1, postgres: clusterCpuSeconds(pgPid) - pg1 };
    const identityWal = await walBytes(wal1);
    await topStatements(`round ${round} identity`);
    const us = (seconds: number) => Math.round((seconds / events) * 1e6);
    results.push({
      round,
      events,
      // Wall clock, so it says as much about the machine's other load as about this code.
      ingestEventsPerSecond: Math.round(events / report.seconds),
      ingestP99Ms: report.latenciesMs[Math.floor(report.latenciesMs.length * 0.99)] ?? null,
      ingestMicros: { server: us(ingest.server), client: us(ingest.client), postgres: us(ingest.postgres), total: us(ingest.server + ingest.client + ingest.postgres), walBytes: Math.round(ingestWal / events), serverGc: us(ingestGcMs / 1000) },
      identityMicros: { node: us(identity.node), postgres: us(identity.postgres), total: us(identity.node + identity.postgres), walBytes: Math.round(identityWal / events) },
      resolved,
      digests: digests !== null,
    });
    console.log(JSON.stringify(results.at(-1)));
    if (digests) {
      // Fresh statistics first: planned with the empty tables' ones, the pass once joined every
      // profile to a scan of all events (minutes instead of a second).
      await db.query('analyze');
      console.log(`digests built: ${await buildWorkspaceDigests(db, workspace.id, digests)}`);
    }
  }
  await app.close();
  console.log(`load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
} finally {
  await db.end();
  await pg.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
