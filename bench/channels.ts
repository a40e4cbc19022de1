/**
 * Channels benchmark on one embedded PostgreSQL in a temporary folder (about two minutes):
 *  (a) batch enqueue: `enqueueMessages` in transactions of BENCH_CHANNELS_BATCH (500) requests —
 *      a broadcast, guards on (a frequency cap and quiet hours that never trigger, so every
 *      guard fact is loaded) — for BENCH_CHANNELS_ENQUEUE_SECONDS (40 s);
 *  (b) single enqueue: one `enqueueMessage` per transaction, as a journey step sends, for 15 s;
 *  (c) dispatch: the dispatcher drains everything queued to a local fake webhook provider
 *      (signed POST per message, rendered Liquid body) for at most BENCH_CHANNELS_DISPATCH_SECONDS (60 s).
 * SQL statements are counted at the client (per message), so the cost is visible beside the rate.
 * Profiles: BENCH_CHANNELS_PROFILES (20,000) with traits.
 *
 * Standalone: `node --import tsx bench/channels.ts`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { putAccount } from '../server/src/channels/accounts.ts';
import type { MessageRequest } from '../server/src/channels/contract.ts';
import { createDispatcher } from '../server/src/channels/dispatch.ts';
import { enqueueMessage, enqueueMessages } from '../server/src/channels/index.ts';
import { putPolicy } from '../server/src/channels/policy.ts';
import { createTemplate } from '../server/src/channels/template-store.ts';
import { createPool, withTransaction, type Db, type DbClient } from '../server/src/storage/database.ts';
import { startEmbeddedPostgres } from '../server/src/storage/embedded.ts';
import { migrate } from '../server/src/storage/migrate.ts';
import { createWorkspace } from '../server/src/workspaces/store.ts';
import { freePort, machine } from './system.ts';

function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

/** Counts the statements a client or pool runs (the benchmark's cost per message). */
function counting<T extends { query: (...args: never[]) => unknown }>(target: T, counter: { n: number }): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver) as unknown;
      if (property === 'query' && typeof value === 'function') {
        return (...args: unknown[]) => {
          counter.n += 1;
          return (value as (...a: unknown[]) => unknown).apply(object, args);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(object) : value;
    },
  });
}

const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

async function fakeProvider(): Promise<{ url: string; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}/hook`, received: () => received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export async function benchChannels(): Promise<Record<string, unknown>> {
  const profiles = envCount('BENCH_CHANNELS_PROFILES', 20_000);
  const batch = envCount('BENCH_CHANNELS_BATCH', 500);
  const enqueueSeconds = envCount('BENCH_CHANNELS_ENQUEUE_SECONDS', 40);
  const singleSeconds = envCount('BENCH_CHANNELS_SINGLE_SECONDS', 15);
  const dispatchSeconds = envCount('BENCH_CHANNELS_DISPATCH_SECONDS', 60);
  const host = machine();
  const log = (line: string) => console.log(`[channels] ${line}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'touchpoint-bench-channels-'));
  // The embedded cluster runs as an unprivileged user that must reach its folder.
  fs.chmodSync(dataDir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  const db: Db = createPool(server.url, 10);
  const provider = await fakeProvider();
  const secretsKey = crypto.randomBytes(32);
  try {
    await migrate(db);
    const ws = (await createWorkspace(db, { slug: 'bench', name: 'bench' })).id;
    await withTransaction(db, async (client) => {
      await putAccount(client, secretsKey, ws, { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: provider.url }, secrets: { signingSecret: 'bench-secret-0123456789' } });
      await createTemplate(client, ws, { key: 'offer', channel: 'webhook', name: 'Offer', defaultLocale: 'en', content: { en: { body: '{"hello": "{{ traits.name }}", "code": "{{ journey.code }}"}' } } });
    });
    // Guards that load every fact but never refuse: a generous cap, quiet hours of one minute at 03:00 UTC.
    await putPolicy(db, ws, { frequencyCaps: [{ maxMessages: 1_000_000, windowSeconds: 7 * 86_400 }], quietHours: { start: '03:00', end: '03:01' }, requireOptIn: [] });
    const { rows } = await db.query<{ id: string }>(
      `with p as (insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id),
            t as (insert into profile_traits (workspace_id, profile_id, key, value, source_kind, source_name, message_id, observed_at)
                  select $1, id, 'name', to_jsonb('person ' || left(id::text, 8)), 'crm_import', 'bench', id::text, now() from p)
       select id from p`,
      [ws, profiles],
    );
    const ids = rows.map((row) => row.id);
    log(`${profiles.toLocaleString('en')} profiles`);
    let serial = 0;
    const request = (): MessageRequest => ({
      workspaceId: ws,
      profileId: ids[serial++ % ids.length]!,
      channel: 'webhook',
      templateKey: 'offer',
      idempotencyKey: `bench:${serial}`,
      purpose: 'marketing',
      variables: { journey: { code: 'SAVE10' } },
      origin: { journeyId: 'bench-broadcast', journeyVersion: 1, instanceId: `i-${serial}`, nodeId: 'send' },
    });

    // (a) batch enqueue
    const batchCounter = { n: 0 };
    let batchMessages = 0;
    const batchStart = performance.now();
    const batchCpu = process.cpuUsage();
    while (performance.now() - batchStart < enqueueSeconds * 1000) {
      const requests = Array.from({ length: batch }, request);
      const results = await withTransaction(db, (client) => enqueueMessages(counting(client, batchCounter) as DbClient, requests, new Date()));
      batchMessages += results.filter((r) => r.status === 'queued').length;
    }
    const batchElapsed = (performance.now() - batchStart) / 1000;
    const batchCpuMs = cpuMs(batchCpu) / batchMessages;
    const batchRate = Math.round(batchMessages / batchElapsed);
    log(`batch enqueue: ${batchMessages} queued in ${batchElapsed.toFixed(1)} s = ${batchRate}/s, ${(batchCounter.n / batchMessages).toFixed(3)} statements/message`);

    // (b) single enqueue, one transaction each (journey steps)
    const singleCounter = { n: 0 };
    let singleMessages = 0;
    const singleStart = performance.now();
    const singleCpu = process.cpuUsage();
    while (performance.now() - singleStart < singleSeconds * 1000) {
      const result = await withTransaction(db, (client) => enqueueMessage(counting(client, singleCounter) as DbClient, request(), new Date()));
      if (result.status === 'queued') singleMessages += 1;
    }
    const singleElapsed = (performance.now() - singleStart) / 1000;
    const singleCpuMs = cpuMs(singleCpu) / singleMessages;
    const singleRate = Math.round(singleMessages / singleElapsed);
    log(`single enqueue: ${singleMessages} in ${singleElapsed.toFixed(1)} s = ${singleRate}/s, ${(singleCounter.n / singleMessages).toFixed(2)} statements/message (+ begin/commit)`);

    // (c) dispatch to the fake provider
    const dispatchCounter = { n: 0 };
    const dispatcher = createDispatcher({ db: counting(db, dispatchCounter), secretsKey, publicUrl: 'http://127.0.0.1:8080', batchSize: 500, concurrency: 64 });
    const before = provider.received();
    const dispatchStart = performance.now();
    const dispatchCpu = process.cpuUsage();
    let dispatched = 0;
    while (performance.now() - dispatchStart < dispatchSeconds * 1000) {
      const taken = await dispatcher.dispatchOnce();
      if (taken === 0) break;
      dispatched += taken;
    }
    const dispatchElapsed = (performance.now() - dispatchStart) / 1000;
    const dispatchCpuMs = cpuMs(dispatchCpu) / dispatched;
    const providerCalls = provider.received() - before;
    const dispatchRate = Math.round(dispatched / dispatchElapsed);
    const { rows: statuses } = await db.query<{ status: string; n: number }>('select status, count(*)::int as n from messages group by status order by status');
    log(`dispatch: ${dispatched} in ${dispatchElapsed.toFixed(1)} s = ${dispatchRate}/s, ${(dispatchCounter.n / dispatched).toFixed(3)} statements/message; provider calls ${providerCalls}`);
    const load = os.loadavg().map((value) => Math.round(value * 100) / 100);
    const summary = [
      `batch enqueue (${batch} per transaction, all guards): ${batchRate.toLocaleString('en')} messages/s, ${(batchCounter.n / batchMessages).toFixed(3)} SQL statements per message, ${batchCpuMs.toFixed(3)} ms Node CPU per message`,
      `single enqueue (one per transaction, as a journey step): ${singleRate.toLocaleString('en')} messages/s, ${(singleCounter.n / singleMessages).toFixed(2)} statements per message besides begin/commit, ${singleCpuMs.toFixed(2)} ms Node CPU per message`,
      `dispatch to a local fake webhook provider (batch 500, 64 calls in flight): ${dispatchRate.toLocaleString('en')} messages/s, ${(dispatchCounter.n / dispatched).toFixed(3)} statements per message, ${dispatchCpuMs.toFixed(2)} ms Node CPU per message (the fake provider shares the process); ${providerCalls.toLocaleString('en')} provider calls for ${dispatched.toLocaleString('en')} messages`,
      `final statuses ${JSON.stringify(Object.fromEntries(statuses.map((s) => [s.status, s.n])))}; load average at start ${host.loadAverageAtStart.join(' ')}, at end ${load.join(' ')}`,
    ];
    return {
      summary,
      profiles,
      batchEnqueue: { messages: batchMessages, seconds: batchElapsed, perSecond: batchRate, nodeCpuMsPerMessage: batchCpuMs, statementsPerMessage: batchCounter.n / batchMessages },
      singleEnqueue: { messages: singleMessages, seconds: singleElapsed, perSecond: singleRate, nodeCpuMsPerMessage: singleCpuMs, statementsPerMessage: singleCounter.n / singleMessages },
      dispatch: { messages: dispatched, seconds: dispatchElapsed, perSecond: dispatchRate, nodeCpuMsPerMessage: dispatchCpuMs, statementsPerMessage: dispatchCounter.n / dispatched, providerCalls },
      machine: { ...host, loadAverageAtEnd: load },
    };
  } finally {
    await provider.close();
    await db.end();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isEntry) {
  const result = await benchChannels();
  console.log((result.summary as string[]).join('\n'));
}
