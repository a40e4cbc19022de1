/**
 * Profile read latency (issue 3's second target) on a large database kept between runs, and a
 * back-to-back comparison with another tree's read.
 *
 * `node --import tsx bench/profile-read.ts`: the first run generates BENCH_PROFILES (1,000,000)
 * profiles and BENCH_PROFILE_EVENTS (10,000,000) events with bench/identity.ts's set-based SQL into
 * PROFILE_READ_DIR (default /tmp/touchpoint-profile-read; ~7 GB, minutes) and keeps it; later runs
 * start the embedded PostgreSQL on it again (migrating it to this tree) and only read.
 * PROFILE_READ_BASE=/path/to/other/tree also reads through that tree's `getProfile` (its
 * server/src/profiles/queries.ts), alternating this tree and that one in rounds, so both see the
 * same machine. BENCH_PROFILE_READS (2,000) reads per round, PROFILE_READ_ROUNDS (2).
 * PROFILE_READ_PREWARM=1 first reads the events and profile tables and their indexes once into the
 * operating system's cache (pg_prewarm 'read'): the steady state of a server that has been
 * answering for a while on a machine whose memory holds the database. Without it the reads
 * right after a start measure the disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { benchReads, generateLargeDatabase, type ProfileReader } from './identity.ts';
import { freePort, machine } from './system.ts';

const dir = process.env.PROFILE_READ_DIR ?? '/tmp/touchpoint-profile-read';
const count = (name: string, fallback: number) => {
  const raw = process.env[name];
  const value = raw ? Number(raw.replaceAll('_', '')) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
};
const profiles = count('BENCH_PROFILES', 1_000_000);
const profileEvents = count('BENCH_PROFILE_EVENTS', 10_000_000);
const reads = count('BENCH_PROFILE_READS', 2000);
const rounds = count('PROFILE_READ_ROUNDS', 2);
const log = (line: string) => console.error(line);

interface Marker {
  workspaceId: string;
  profiles: number;
  events: number;
  generatedSeconds: number;
  sizes: Record<string, string>;
}

async function readerOf(tree: string): Promise<ProfileReader> {
  const queries = (await import(path.join(path.resolve(tree), 'server/src/profiles/queries.ts'))) as typeof import('../server/src/profiles/queries.ts');
  return async (db, ws, profileId) => queries.getProfile(db, ws, await queries.locateProfile(db, ws, profileId), { events: 50 });
}

fs.mkdirSync(dir, { recursive: true });
fs.chmodSync(dir, 0o755);
const markerFile = path.join(dir, 'generated.json');
const server = await startEmbeddedPostgres({ dataDir: dir, port: await freePort() });
const db = createPool(server.url, 10);
try {
  await migrate(db);
  await runWorkerMigrations({ pgPool: db });
  let marker: Marker;
  if (fs.existsSync(markerFile)) {
    marker = JSON.parse(fs.readFileSync(markerFile, 'utf8')) as Marker;
    log(`Reusing ${marker.profiles.toLocaleString('en')} profiles / ${marker.events.toLocaleString('en')} events in ${dir}`);
  } else {
    const large = await generateLargeDatabase(db, profiles, profileEvents, log);
    marker = { workspaceId: large.workspaceId, profiles, events: profileEvents, generatedSeconds: large.seconds, sizes: large.sizes };
    fs.writeFileSync(markerFile, JSON.stringify(marker, null, 2));
  }
  if (process.env.PROFILE_READ_PREWARM === '1') {
    const started = performance.now();
    await db.query('create extension if not exists pg_prewarm');
    const { rows } = await db.query<{ blocks: string }>(
      `select coalesce(sum(pg_prewarm(c.oid, 'read')), 0)::text as blocks from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'i') and (c.relname like 'events%' or c.relname like 'profile%')`,
    );
    log(`prewarmed ${Math.round((Number(rows[0]!.blocks) * 8) / 1024)} MB into the OS cache in ${Math.round((performance.now() - started) / 1000)} s`);
  }
  const trees: Array<{ name: string; read: ProfileReader }> = [{ name: 'this tree', read: await readerOf(path.join(import.meta.dirname, '..')) }];
  if (process.env.PROFILE_READ_BASE) trees.push({ name: process.env.PROFILE_READ_BASE, read: await readerOf(process.env.PROFILE_READ_BASE) });
  const results: Array<Record<string, unknown>> = [];
  for (let round = 0; round < rounds; round++) {
    // The base tree first in odd rounds: neither always gets the warmer cache.
    const order = round % 2 === 0 ? trees : [...trees].reverse();
    for (const tree of order) {
      const result = await benchReads(db, marker.workspaceId, marker.profiles, reads, tree.read, 7 + round);
      log(`round ${round + 1}, ${tree.name}: p50 ${result.latencyMs.p50} ms, p90 ${result.latencyMs.p90} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms ` +
        `(busiest 1% p99 ${result.heavyProfilesLatencyMs.p99}, others p99 ${result.typicalProfilesLatencyMs.p99}); ${result.averageEventsPerRead} events/read`);
      results.push({ round: round + 1, tree: tree.name, ...result });
    }
  }
  console.log(JSON.stringify({ data: marker, results, machine: machine() }, null, 2));
} finally {
  await db.end();
  await server.stop();
}
