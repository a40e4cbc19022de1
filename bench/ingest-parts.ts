/**
 * PostgreSQL CPU per event of the ingest statement, and of variants of it with one part taken out,
 * against a bare multi-row INSERT of the same events: which part of the stored path costs what,
 * measured on the database alone (no HTTP, no worker).
 *
 *   node --import tsx bench/ingest-parts.ts            # PARTS_EVENTS (default 25,600) per variant and round
 *
 * The server's real parameters are captured once: storeEvents runs on the bench's events with a
 * pool whose ingest statement is recorded instead of sent. Each variant then runs them through 16
 * connections (autocommit, as the server does) into emptied tables, PARTS_ROUNDS times, the
 * variants interleaved round by round so they see the same load. PARTS_ONLY=a,b picks variants.
 */
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Submittable } from 'pg';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalizeEvent, type NormalizedEvent } from '../server/src/ingest/normalize.ts';
import { INSERT_EVENTS_AND_OBSERVATIONS, storeEvents } from '../server/src/ingest/store.ts';
import { createPool, type Db } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { ensureMonthlyPartitions } from '../server/src/storage/partitions.ts';
import { createSource, createWorkspace } from '../server/src/workspaces/store.ts';
import { createBatchSource } from './events.ts';
import { clusterCpuSeconds, freePort, postmasterPid, processCpuSeconds } from './system.ts';

const events = Number(process.env.PARTS_EVENTS ?? 25_600);
const rounds = Number(process.env.PARTS_ROUNDS ?? 5);
const connections = 16;
const batchSize = 100;

/** One variant: a statement and how its parameters are made from the captured ones (or, for COPY, the data). */
interface Variant {
  name: string;
  sql: string;
  params?: (captured: unknown[]) => unknown[];
  copy?: boolean;
}

const copyFrom = (createRequire(import.meta.url)('pg-copy-streams') as { from(sql: string): Writable & Submittable }).from;
const COPY_COLUMNS = [
  'timestamp', 'message_id', 'type', 'event', 'name', 'category', 'user_id', 'anonymous_id', 'previous_id', 'group_id',
  'properties', 'traits', 'context', 'integrations', 'extra', 'original_timestamp', 'sent_at', 'received_at', 'pii_hashes',
] as const;
/** COPY text format of one field. */
function copyField(value: unknown): string {
  if (value === undefined || value === null) return '\\N';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\\\n\r\t]/.test(text) ? text.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t')) : text;
}

const full = INSERT_EVENTS_AND_OBSERVATIONS;
function cut(text: string, from: string, to: string, replacement = ''): string {
  const start = text.indexOf(from);
  const end = text.indexOf(to, start + from.length);
  if (start < 0 || end < 0) throw new Error(`variant: "${from}" … "${to}" not found`);
  return text.slice(0, start) + replacement + text.slice(end);
}
const PROFILE_GUESS = /coalesce\(\s*\(select pi\.profile_id[\s\S]*?unbound_at is null\)\)/;

const variants: Variant[] = [
  { name: 'full', sql: full },
  { name: 'no-claim', sql: full.replace(/fresh as \([\s\S]*?returning message_id\s*\)/, 'fresh as (select message_id from incoming)') },
  { name: 'no-identity-queue', sql: cut(full, 'queued as (', 'observed as (') },
  { name: 'no-catalogue', sql: full.replace(/observed as \([\s\S]*?\$5\)\s*\),/, ''), params: (captured) => captured.slice(0, 3) },
  { name: 'no-profile-guess', sql: full.replace(PROFILE_GUESS, 'null::uuid') },
  {
    name: 'no-pii-hashes',
    sql: full,
    params: (captured) => {
      const records = JSON.parse(captured[2] as string) as Array<Record<string, unknown>>;
      for (const record of records) delete record.pii_hashes;
      return [captured[0], captured[1], JSON.stringify(records), captured[3], captured[4]];
    },
  },
  // The batch read as json (no jsonb of the whole batch: only its jsonb columns are parsed as jsonb).
  { name: 'json-recordset', sql: full.replace('jsonb_to_recordset($3::jsonb)', 'json_to_recordset($3::json)') },
  // Stored and queued read incoming, not incoming joined to the claim (the statement fails unless every claim was fresh anyway).
  { name: 'no-fresh-join', sql: full.replaceAll('from incoming i join fresh f using (message_id)', 'from incoming i') },
  {
    name: 'events-only',
    // jsonb_to_recordset into events, nothing else: the statement's floor on this path.
    sql: `insert into events (workspace_id, timestamp, seq, message_id, source_id, type, event, name, category, user_id,
    anonymous_id, previous_id, group_id, properties, traits, context, integrations, extra, original_timestamp,
    sent_at, received_at, pii_hashes)
  select $1, i.timestamp, nextval('events_seq'), i.message_id, $2, i.type, i.event, i.name, i.category, i.user_id, i.anonymous_id,
    i.previous_id, i.group_id, i.properties, i.traits, i.context, i.integrations, i.extra, i.original_timestamp,
    i.sent_at, i.received_at, i.pii_hashes
  from jsonb_to_recordset($3::jsonb) as i(message_id text, timestamp timestamptz, type text, event text, name text, category text,
  user_id text, anonymous_id text, previous_id text, group_id text, properties jsonb, traits jsonb, context jsonb,
  integrations jsonb, extra jsonb, original_timestamp timestamptz, sent_at timestamptz, received_at timestamptz, pii_hashes jsonb)`,
    params: (captured) => [captured[0], captured[1], captured[2]],
  },
  {
    name: 'copy-events-only',
    // COPY (text) of the same records into events, nothing else: the floor of a COPY path.
    sql: `copy events (workspace_id, source_id, ${COPY_COLUMNS.join(', ')}) from stdin`,
    copy: true,
    params: (captured) => {
      const records = JSON.parse(captured[2] as string) as Array<Record<string, unknown>>;
      const lines = records.map((record) => [captured[0], captured[1], ...COPY_COLUMNS.map((column) => record[column])].map(copyField).join('\t'));
      return [lines.join('\n') + '\n'];
    },
  },
];

const only = (process.env.PARTS_ONLY ?? '').split(',').filter(Boolean);
const chosen = only.length ? variants.filter((variant) => only.includes(variant.name)) : variants;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-parts-'));
fs.chmodSync(dataDir, 0o755);
const pg = await startEmbeddedPostgres({ dataDir, port: await freePort() });
const pgPid = postmasterPid(path.join(dataDir, 'pg'));
const db = createPool(pg.url);
try {
  await migrate(db);
  const workspace = await createWorkspace(db, { slug: 'bench', name: 'Bench retail' });
  const { source } = await createSource(db, workspace.id, { name: 'Web shop', kind: 'web' });
  await ensureMonthlyPartitions(db, 'events', [new Date()]);

  // The server's parameters for every batch, captured from storeEvents.
  const captured: unknown[][] = [];
  const recorder = new Proxy(db, {
    get(target, key, receiver) {
      if (key !== 'query') return Reflect.get(target, key, receiver);
      return (config: unknown, values?: unknown[]) => {
        const named = typeof config === 'object' && config !== null ? (config as { name?: string; values?: unknown[] }) : null;
        if (named?.name === 'touchpoint_ingest_store_batch' && named.values) {
          const params = named.values;
          captured.push(params);
          return Promise.resolve({ rows: [{ stored: params[4] }] });
        }
        return target.query(config as string, values);
      };
    },
  }) as Db;
  const batchSource = createBatchSource(crypto.randomBytes(4).toString('hex'), batchSize);
  for (let batch = 0; batch < events / batchSize; batch++) {
    const body = JSON.parse(batchSource.body(batch)) as { batch: unknown[] };
    const receivedAt = new Date();
    const normalized: NormalizedEvent[] = [];
    for (const item of body.batch) {
      const result = normalizeEvent(item, { receivedAt, batch: {} });
      if (result.ok) normalized.push(result.event);
    }
    await storeEvents(recorder, { workspaceId: workspace.id, sourceId: source.id }, normalized);
  }
  const paramsOf = new Map(chosen.map((variant) => [variant.name, captured.map((params) => (variant.params ? variant.params(params) : params))]));
  console.log(`load at start ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}; ${captured.length} batches captured`);

  const walPosition = async () => (await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')).rows[0]!.lsn;
  const walBytes = async (from: string) => Number((await db.query<{ n: string }>('select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint as n', [from])).rows[0]!.n);
  const results = new Map<string, Array<{ pg: number; node: number; wal: number; eps: number }>>();
  for (let round = 1; round <= rounds; round++) {
    // Rotated each round, so no variant always runs first (or right after the same neighbour).
    const order = chosen.map((_, i) => chosen[(i + round - 1) % chosen.length]!);
    for (const variant of order) {
      const batches = paramsOf.get(variant.name)!;
      await db.query('truncate events, event_message_ids, identity_queue, catalogue_queue');
      await db.query('checkpoint');
      // PARTS_PERF=folder: perf samples of the cluster's processes during round 1 (one file per variant).
      const perfDir = process.env.PARTS_PERF;
      let perf: ReturnType<typeof spawn> | undefined;
      if (perfDir && round === 1) {
        await Promise.all(Array.from({ length: connections }, () => db.query('select 1')));
        const pids = execFileSync('pgrep', ['-P', String(pgPid)], { encoding: 'utf8' }).trim().split('\n').join(',');
        perf = spawn('/usr/bin/perf', ['record', '-F', '999', '-p', pids, '-o', path.join(perfDir, `${variant.name}.data`)], { stdio: 'ignore' });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const statement = { name: `parts_${variant.name}`.replace(/-/g, '_'), text: variant.sql };
      const wal0 = await walPosition();
      const pg0 = clusterCpuSeconds(pgPid);
      const node0 = processCpuSeconds();
      const start = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: connections }, async () => {
          while (next < batches.length) {
            const values = batches[next++]!;
            if (!variant.copy) {
              await db.query({ ...statement, values });
              continue;
            }
            const client = await db.connect();
            try {
              const stream = client.query(copyFrom(variant.sql));
              stream.end(values[0] as string);
              await finished(stream);
            } finally {
              client.release();
            }
          }
        }),
      );
      const seconds = (performance.now() - start) / 1000;
      if (perf) {
        const exited = new Promise((resolve) => perf!.once('exit', resolve));
        perf.kill('SIGINT');
        await exited;
      }
      const us = (value: number) => Math.round((value / events) * 1e6 * 10) / 10;
      const row = { pg: us(clusterCpuSeconds(pgPid) - pg0), node: us(processCpuSeconds() - node0), wal: Math.round((await walBytes(wal0)) / events), eps: Math.round(events / seconds) };
      results.set(variant.name, [...(results.get(variant.name) ?? []), row]);
      console.log(`round ${round} ${variant.name.padEnd(18)} pg ${row.pg} µs/event, node ${row.node}, WAL ${row.wal} B/event, ${row.eps} events/s`);
    }
  }
  console.log(`load at end ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  console.log('variant            pg µs/event: mean  median   min   WAL B/event');
  for (const [name, rows] of results) {
    const mean = (values: number[]) => Math.round((values.reduce((a, b) => a + b, 0) / values.length) * 10) / 10;
    const sorted = rows.map((r) => r.pg).sort((a, b) => a - b);
    console.log(`${name.padEnd(18)} ${String(mean(sorted)).padStart(13)} ${String(sorted[Math.floor(sorted.length / 2)]).padStart(7)} ${String(sorted[0]).padStart(5)} ${String(mean(rows.map((r) => r.wal))).padStart(10)}`);
  }
} finally {
  await db.end();
  await pg.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
