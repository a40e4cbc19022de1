/**
 * Date-trait and scheduled-audience entries, and the dry run, on one embedded PostgreSQL in a
 * temporary folder.
 *
 * (a) Date-trait scan: BENCH_SCHEDULE_PROFILES (20,000) profiles with a birthday spread over the
 *     year and one of four time zones; a yearly "3 days before at 10:00" journey; one scan of a
 *     one-minute window (what the loop does every minute) and one of a whole day (catching up),
 *     wall time and profiles entered.
 * (b) Broadcast: a scheduled audience over a segment of all those profiles; one run enters them
 *     (entries/s, wall time of the run).
 * (c) Dry run: BENCH_DRY_RUNS (20) dry runs of an 8-node journey (sends through channels' guards
 *     and templates, waits, a trait update) for one profile: median and p95 ms per run.
 *
 * Standalone: `node --import tsx bench/journey-schedules.ts`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { putAccount } from '../server/src/channels/accounts.ts';
import { createTemplate } from '../server/src/channels/template-store.ts';
import type { JourneyDefinition } from '../server/src/journeys/definition.ts';
import { dryRun } from '../server/src/journeys/dry-run.ts';
import { drainScheduledEntries } from '../server/src/journeys/schedules.ts';
import { createJourney, publishJourney } from '../server/src/journeys/store.ts';
import { createPool, withTransaction } from '../server/src/storage/database.ts';
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

const ZONES = ['Asia/Shanghai', 'Europe/London', 'America/New_York', 'UTC'];

export async function benchJourneySchedules(options: { log?: (line: string) => void } = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => console.error(line));
  const profiles = envCount('BENCH_SCHEDULE_PROFILES', 20_000);
  const runs = envCount('BENCH_DRY_RUNS', 20);
  const host = machine();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-schedules-'));
  fs.chmodSync(dataDir, 0o755);
  log(`Starting embedded PostgreSQL in ${dataDir}`);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db = createPool(server.url, 10);
  try {
    await migrate(db);
    const ws = (await createWorkspace(db, { slug: 'bench', name: 'bench' })).id;
    log(`Seeding ${profiles.toLocaleString('en')} profiles with birthdays …`);
    const { rows: ids } = await db.query<{ id: string }>('insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id', [ws, profiles]);
    await db.query(
      `insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
       select $1::uuid, p, 'birthday', to_jsonb(to_char(date '1980-01-01' + (n * 7919 % 365)::int, 'YYYY-MM-DD')), 'bench', 'bench', 'm', now()
         from unnest($2::uuid[]) with ordinality as x(p, n)
       union all
       select $1::uuid, p, 'timezone', to_jsonb(($3::text[])[1 + (n % 4)::int]), 'bench', 'bench', 'm', now()
         from unnest($2::uuid[]) with ordinality as x(p, n)`,
      [ws, ids.map((r) => r.id), ZONES],
    );
    const { rows: segment } = await db.query<{ id: string }>(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, 'everyone', 'everyone', 'realtime', '{"kind":"trait","path":"x","op":"exists"}', 'ready') returning id`,
      [ws],
    );
    await db.query(`insert into segment_memberships (workspace_id, segment_id, profile_id, entered_at) select $1, $2, p, now() from unnest($3::uuid[]) as p`, [
      ws,
      segment[0]!.id,
      ids.map((r) => r.id),
    ]);
    await db.query('analyze');

    // (a) date-trait scans
    const published = new Date('2026-06-01T00:00:00Z');
    await createJourney(db, ws, {
      key: 'birthday',
      name: 'birthday',
      definition: {
        nodes: [
          { id: 'in', kind: 'entry', trigger: { kind: 'date', trait: 'birthday', days: -3, time: '10:00', repeat: 'yearly' }, reentry: { mode: 'after', days: 300 }, next: 'end' },
          { id: 'end', kind: 'end' },
        ],
      },
    });
    await publishJourney(db, ws, 'birthday', published);
    const minuteAt = new Date(published.getTime() + 60_000);
    let started = performance.now();
    const minuteEntered = await drainScheduledEntries(db, minuteAt);
    const minuteMs = performance.now() - started;
    const dayAt = new Date(minuteAt.getTime() + 86_400_000);
    started = performance.now();
    const dayEntered = await drainScheduledEntries(db, dayAt);
    const dayMs = performance.now() - started;
    await db.query(`update journeys set status = 'archived' where workspace_id = $1`, [ws]);

    // (b) broadcast
    await createJourney(db, ws, {
      key: 'broadcast',
      name: 'broadcast',
      definition: {
        nodes: [
          { id: 'in', kind: 'entry', trigger: { kind: 'schedule', segment: 'everyone', at: '2026-06-03T00:00:00Z' }, reentry: { mode: 'always' }, next: 'end' },
          { id: 'end', kind: 'end' },
        ],
      },
    });
    await publishJourney(db, ws, 'broadcast', published);
    started = performance.now();
    const broadcastEntered = await drainScheduledEntries(db, new Date('2026-06-03T00:00:00Z'));
    const broadcastMs = performance.now() - started;
    await db.query(`update journeys set status = 'archived' where workspace_id = $1`, [ws]);

    // (c) dry runs
    await withTransaction(db, async (client) => {
      await putAccount(client, Buffer.alloc(32, 1), ws, { key: 'mail', kind: 'email', provider: 'smtp', settings: { host: '127.0.0.1', port: 25, from: 'a@b.c' } });
      await createTemplate(client, ws, { key: 'hello', channel: 'email', name: 'hello', defaultLocale: 'en', content: { en: { subject: 'Hi {{ profile.id }}', text: '{{ journey.coupon }}' } } });
    });
    await db.query(`update profile_traits set value = '"a@example.com"', key = 'email' where workspace_id = $1 and profile_id = $2 and key = 'timezone'`, [ws, ids[0]!.id]);
    const definition: JourneyDefinition = {
      nodes: [
        { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'one' },
        { id: 'one', kind: 'send', channel: 'email', template: 'hello', purpose: 'marketing', next: 'day' },
        { id: 'day', kind: 'delay', duration: { amount: 1, unit: 'days' }, next: 'vip' },
        { id: 'vip', kind: 'split', condition: 'in_segment("everyone")', yes: 'two', no: 'end' },
        { id: 'two', kind: 'send', channel: 'email', template: 'hello', purpose: 'marketing', next: 'order' },
        { id: 'order', kind: 'wait', event: 'Order Completed', timeout: { amount: 2, unit: 'days' }, happened: 'end', timedOut: 'tag' },
        { id: 'tag', kind: 'update_trait', addTags: ['nurtured'], next: 'end' },
        { id: 'end', kind: 'end' },
      ],
      variables: { coupon: 'X' },
    };
    const journey = await createJourney(db, ws, { key: 'dry', name: 'dry', definition });
    const version = { journeyId: journey.id, journeyKey: 'dry', version: 0, definition };
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      started = performance.now();
      const result = await dryRun(db, ws, version, ids[0]!.id, { start: new Date('2026-06-05T03:00:00Z') });
      times.push(performance.now() - started);
      if (result.path.length !== 8) throw new Error(`dry run walked ${result.path.length} nodes`);
    }
    times.sort((a, b) => a - b);
    const result = {
      profiles,
      dateScan: {
        minuteWindow: { ms: Math.round(minuteMs), entered: minuteEntered },
        dayWindow: { ms: Math.round(dayMs), entered: dayEntered },
      },
      broadcast: { entered: broadcastEntered, ms: Math.round(broadcastMs), entriesPerSecond: Math.round(broadcastEntered / (broadcastMs / 1000)) },
      dryRunMs: { runs, p50: Math.round(percentile(times, 50)), p95: Math.round(percentile(times, 95)) },
      machine: host,
    };
    const summary = [
      `${profiles.toLocaleString('en')} profiles with a birthday and a time zone:`,
      `  date-trait scan of a 1-minute window: ${result.dateScan.minuteWindow.ms} ms (${minuteEntered} entered); of a 1-day window: ${result.dateScan.dayWindow.ms} ms (${dayEntered} entered)`,
      `  broadcast to all of them: ${broadcastEntered} entered in ${result.broadcast.ms} ms (${result.broadcast.entriesPerSecond} entries/s)`,
      `dry run of an 8-node journey (2 sends through the guards and templates): p50 ${result.dryRunMs.p50} ms, p95 ${result.dryRunMs.p95} ms over ${runs} runs`,
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
  const result = await benchJourneySchedules();
  console.log((result.summary as string[]).join('\n'));
}
