/**
 * PostgreSQL CPU of taking the identity queue, per event: the per-event queue of before migration
 * 0093 (a row per event, `delete … order by seq limit n`) against the row-per-request queue
 * (identity/queue-take.ts). (A plpgsql loop over the rows, tried first, cost ~4 µs per event.)
 *
 *   node --import tsx bench/identity-queue-take.ts     # TAKE_EVENTS (default 51,200), TAKE_BATCH (5,000), TAKE_ROUNDS (3)
 *
 * Each round fills each queue with the same events, requests of 100 events whose seqs interleave
 * as 16 concurrent requests' do, then drains it in batches; the variants alternate within a round.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TAKE_QUEUED_EVENTS } from '../server/src/identity/queue-take.ts';
import { createPool } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { clusterCpuSeconds, freePort, postmasterPid } from './system.ts';

const total = Number(process.env.TAKE_EVENTS ?? 51_200);
const batch = Number(process.env.TAKE_BATCH ?? 5_000);
const rounds = Number(process.env.TAKE_ROUNDS ?? 3);
const ws = '00000000-0000-4000-8000-00000000b0b0';

/** Requests of 100 events; each seq goes to one of the 16 requests in flight, as concurrent inserts draw them. */
function requests(): number[][] {
  let state = 42;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const done: number[][] = [];
  const inFlight: number[][] = Array.from({ length: 16 }, () => []);
  let opened = 16;
  for (let seq = 1; seq <= total; seq++) {
    const i = Math.floor(random() * inFlight.length);
    const request = inFlight[i]!;
    request.push(seq);
    if (request.length === 100) {
      done.push(request);
      if (opened * 100 < total) {
        inFlight[i] = [];
        opened++;
      } else inFlight.splice(i, 1);
    }
  }
  return [...done, ...inFlight.filter((r) => r.length > 0)];
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-queue-take-'));
fs.chmodSync(dataDir, 0o755);
const pg = await startEmbeddedPostgres({ dataDir, port: await freePort() });
const pgPid = postmasterPid(path.join(dataDir, 'pg'));
const db = createPool(pg.url, 2);
try {
  await migrate(db);
  await db.query(`create table identity_queue_per_event (workspace_id uuid not null, seq bigint not null, timestamp timestamptz not null, primary key (workspace_id, seq))`);
  const rows = requests();
  const variants: Record<string, { fill: () => Promise<void>; take: () => Promise<number> }> = {
    'per event': {
      fill: async () => {
        await db.query(`insert into identity_queue_per_event select $1, s, now() from generate_series(1, $2::int) as s`, [ws, total]);
      },
      take: async () =>
        (
          await db.query(
            `delete from identity_queue_per_event where workspace_id = $1 and seq = any(array(
               select seq from identity_queue_per_event where workspace_id = $1 order by seq limit $2))
             returning seq, to_json(timestamp) #>> '{}' as timestamp, floor(extract(epoch from now()) * 1000)::float8 as now`,
            [ws, batch],
          )
        ).rowCount ?? 0,
    },
    ...Object.fromEntries(
      [
        ['per request', TAKE_QUEUED_EVENTS],
      ].map(([name, statement]) => [
        name!,
        {
          fill: async () => {
            await db.query(
              `insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
               select $1, (r->>0)::bigint, jsonb_array_length(r), array(select jsonb_array_elements_text(r)::bigint),
                      array_fill(now(), array[jsonb_array_length(r)])
                 from jsonb_array_elements($2::jsonb) as r`,
              [ws, JSON.stringify(rows)],
            );
          },
          take: async () => (await db.query(statement!, [ws, batch])).rowCount ?? 0,
        },
      ]),
    ),
  };
  console.log(`load at start ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}; ${total} events in ${rows.length} requests, batches of ${batch}`);
  for (let round = 1; round <= rounds; round++) {
    const line: string[] = [];
    for (const [name, variant] of Object.entries(variants)) {
      await variant.fill();
      await db.query('vacuum analyze identity_queue, identity_queue_per_event');
      const cpu0 = clusterCpuSeconds(pgPid);
      const start = performance.now();
      let taken = 0;
      let calls = 0;
      for (let n; (n = await variant.take()) > 0; calls++) taken += n;
      const micros = ((clusterCpuSeconds(pgPid) - cpu0) * 1e6) / taken;
      if (taken !== total) throw new Error(`${name}: took ${taken} of ${total}`);
      line.push(`${name}: ${micros.toFixed(1)} µs PostgreSQL CPU/event, ${calls} batches, ${((performance.now() - start) / calls).toFixed(1)} ms/batch`);
    }
    console.log(`round ${round} (load ${os.loadavg()[0]!.toFixed(1)}): ${line.join('; ')}`);
  }
} finally {
  await db.end();
  await pg.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
