/**
 * Where the real-time drain's CPU per profile goes, part by part, on a kept data folder
 * (bench/segments-kept.ts prepare): the snapshot loader's reads (liveness, traits, consents,
 * memberships, events: the ones the 20 catalogue segments need) each alone, then all of them with
 * the evaluation of the 20 segments, over the same BATCHES × SIZE profiles picked by a hash salted
 * with SALT. One connection, so the backend's own CPU (/proc) is the statement's. The first part to
 * touch a page after the start reads it into shared buffers: "events" is the cold cost, "all" the
 * warm one (same profiles again).
 *
 *   BENCH_SEGMENT_DATA_DIR=/tmp/seg-250k SALT=a1 SIZE=500 BATCHES=8 node --import tsx bench/segments-parts.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadWorkspaceSegments, evaluateProfile, orderByDependencies } from '../server/src/segments/realtime.ts';
import { emptyReads, loadProfileSnapshots, snapshotNeeds, type SnapshotNeeds } from '../server/src/segments/snapshots.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { freePort, processCpuSeconds } from './system.ts';

const dataDir = process.env.BENCH_SEGMENT_DATA_DIR!;
const meta = JSON.parse(fs.readFileSync(path.join(dataDir, 'meta.json'), 'utf8'));
const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
const db = createPool(server.url, 1);
const ws = meta.workspaceId;
const now = new Date(meta.now).getTime();
const client = await db.connect();
const { rows: [{ pid }] } = await client.query('select pg_backend_pid() as pid');
const backendCpu = () => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); const x = f.slice(f.lastIndexOf(')') + 2).split(' '); return (Number(x[11]) + Number(x[12])) / 100; };
const { realtime, keysById } = await loadWorkspaceSegments(client as never, ws);
const segments = orderByDependencies(realtime);
const reads = emptyReads();
for (const s of segments) { reads.events.push(...s.reads.events); reads.traits ||= s.reads.traits; reads.consents ||= s.reads.consents; reads.identifiers ||= s.reads.identifiers; }
const full = snapshotNeeds(reads, now);
full.memberships = keysById;
const none: SnapshotNeeds = { ...full, traits: false, consents: false, identifiers: false, memberships: null, events: { track: { all: null, names: new Map() }, page: { all: null, names: new Map() }, screen: { all: null, names: new Map() } } };
const parts: Record<string, SnapshotNeeds> = {
  live: none,
  traits: { ...none, traits: true },
  consents: { ...none, consents: true },
  memberships: { ...none, memberships: keysById },
  events: { ...none, events: full.events, context: full.context },
  all: full,
};
const batches = Number(process.env.BATCHES ?? 8);
const size = Number(process.env.SIZE ?? 500);
const salt = process.env.SALT ?? 'p';
const { rows } = await client.query(`select id from profiles where workspace_id = $1 order by md5(id::text || $2) limit $3`, [ws, salt, batches * size]);
const ids = rows.map((r) => r.id as string);
const out: Record<string, { pgUs: number; nodeUs: number }> = {};
for (const [name, needs] of Object.entries(parts)) {
  // warm pass on a different slice is not done: each part reads the same profiles, in this order.
  const p0 = backendCpu(); const n0 = processCpuSeconds();
  for (let b = 0; b < batches; b++) {
    const snaps = await loadProfileSnapshots(client as never, ws, ids.slice(b * size, (b + 1) * size), needs);
    if (name === 'all') for (const s of snaps) evaluateProfile(segments, s, now);
  }
  out[name] = { pgUs: Math.round(((backendCpu() - p0) / ids.length) * 1e6), nodeUs: Math.round(((processCpuSeconds() - n0) / ids.length) * 1e6) };
  console.log(name, out[name]);
}
// evaluation only
const snaps = await loadProfileSnapshots(client as never, ws, ids.slice(0, size), full);
const n0 = processCpuSeconds();
for (let r = 0; r < 5; r++) for (const s of snaps) evaluateProfile(segments, s, now + r);
console.log('evaluate only µs/profile', Math.round(((processCpuSeconds() - n0) / (5 * snaps.length)) * 1e6), 'events/profile', snaps.reduce((a, s) => a + s.events.length, 0) / snaps.length);
client.release();
await db.end();
await server.stop();
