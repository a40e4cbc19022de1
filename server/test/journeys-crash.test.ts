import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putAccount } from '../src/channels/accounts.ts';
import { createTemplate } from '../src/channels/template-store.ts';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { enterProfiles } from '../src/journeys/executor.ts';
import { createJourney, publishJourney } from '../src/journeys/store.ts';
import { prepareTransitionStorage } from '../src/segments/transitions.ts';
import { withTransaction } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'journeys-crash-child.ts');
const INSTANCES = Number(process.env.JOURNEYS_CRASH_INSTANCES ?? 1000);
// Worker processes running at once (each round kills them all). Starting one costs seconds of CPU
// on a loaded machine, so one at a time by default; concurrent executors are tested without kills
// in journeys-executor.test.ts.
const WORKERS = Number(process.env.JOURNEYS_CRASH_WORKERS ?? 1);
const SECRETS_KEY = crypto.randomBytes(32);

const definition: JourneyDefinition = {
  nodes: [
    { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'first' },
    { id: 'first', kind: 'send', channel: 'webhook', template: 'first', purpose: 'transactional', next: 'pause' },
    { id: 'pause', kind: 'delay', duration: { amount: 1, unit: 'minutes' }, next: 'second' },
    { id: 'second', kind: 'send', channel: 'webhook', template: 'second', purpose: 'transactional', next: 'end' },
    { id: 'end', kind: 'end' },
  ],
};

/**
 * A webhook receiver that honours `Idempotency-Key` as a real provider would: the first request
 * with a key delivers the message, a repeat (a resend after a crash) is answered 200 and not
 * delivered again. It answers after a random 0–10 ms, so kills land between call and commit too.
 */
async function fakeProvider() {
  const delivered = new Map<string, { profileId: string; templateKey: string }>();
  let calls = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      calls++;
      const key = String(req.headers['idempotency-key']);
      const payload = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { profileId: string; templateKey: string };
      if (!delivered.has(key)) delivered.set(key, { profileId: payload.profileId, templateKey: payload.templateKey });
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }, Math.random() * 10);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    delivered,
    calls: () => calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('journey executor and dispatcher crash safety', () => {
  let database: TestDatabase;
  let provider: Awaited<ReturnType<typeof fakeProvider>>;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    database = await createTestDatabase();
    provider = await fakeProvider();
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await provider?.close();
    await database?.drop();
  });

  /** A worker process, started now and set to work by `go` (starting one takes seconds on a loaded machine). */
  const startWorker = (origin: number) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, database.url, String(origin), SECRETS_KEY.toString('hex')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    children.add(child);
    const ready = new Promise<void>((resolve) => child.stdout!.on('data', (chunk) => String(chunk).includes('ready') && resolve()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    return {
      go: async () => {
        await ready;
        child.stdin!.write('go\n');
      },
      kill: async () => {
        child.kill('SIGKILL');
        await exited;
        children.delete(child);
        return stderr;
      },
    };
  };

  it(`SIGKILLed workers at random points across ${INSTANCES} instances: after restarts every message reached the provider exactly once`, async () => {
    const db = database.db;
    const origin = Date.now();
    const workspace = await createWorkspace(db, { slug: 'crash', name: 'crash' });
    await withTransaction(db, async (client) => {
      await putAccount(client, SECRETS_KEY, workspace.id, { key: 'hook', kind: 'webhook', provider: 'webhook', settings: { url: provider.url }, secrets: { signingSecret: 'crash-secret-0123456789' } });
      for (const key of ['first', 'second']) {
        await createTemplate(client, workspace.id, { key, channel: 'webhook', name: key, defaultLocale: 'en', content: { en: { body: `{"step": "${key}"}` } } });
      }
    });
    const journey = await createJourney(db, workspace.id, { key: 'two-step', name: 'Two steps', definition });
    await publishJourney(db, workspace.id, 'two-step', new Date(origin));
    const { rows: profiles } = await db.query<{ id: string }>('insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id', [
      workspace.id,
      INSTANCES,
    ]);
    await prepareTransitionStorage(db, new Date(origin));
    await withTransaction(db, (client) => enterProfiles(client, workspace.id, journey.id, profiles.map((p) => ({ profileId: p.id, entry: 'api' as const })), new Date(origin)));

    // Work done so far: steps committed (5 per instance) plus messages the provider acknowledged and we recorded (2 per instance).
    const TOTAL = 7 * INSTANCES;
    const progress = async () =>
      (
        await db.query<{ units: number; active: number; unsent: number }>(
          `select (select count(*)::int from journey_steps where workspace_id = $1)
                + (select count(*)::int from messages where workspace_id = $1 and status = 'sent') as units,
                  (select count(*)::int from journey_instances where workspace_id = $1 and status = 'active') as active,
                  (select count(*)::int from messages where workspace_id = $1 and status in ('queued', 'sending')) as unsent`,
          [workspace.id],
        )
      ).rows[0]!;
    let kills = 0;
    let done = false;
    // WORKERS at a time, the next ones starting meanwhile (starting one takes seconds on a loaded
    // machine). Each round the workers are killed at a random point of the remaining work: once a
    // random 5–35 % of it is done, plus a random 0–500 ms, so the kill lands mid-walk,
    // mid-enqueue, between a provider's answer and the commit, wherever that is. After
    // KILL_ROUNDS the last workers run until everything is done. Bounded by work, not by time, so
    // the number of restarts does not grow on a slow machine.
    const KILL_ROUNDS = 6;
    const startWorkers = () => Array.from({ length: WORKERS }, () => startWorker(origin));
    let spares = startWorkers();
    for (let round = 0; round <= KILL_ROUNDS && !done; round++) {
      const workers = spares;
      spares = round < KILL_ROUNDS ? startWorkers() : [];
      const before = await progress();
      const target = round < KILL_ROUNDS ? before.units + Math.max(1, Math.round((0.05 + Math.random() * 0.3) * (TOTAL - before.units))) : TOTAL;
      await Promise.all(workers.map((worker) => worker.go()));
      const deadline = Date.now() + 240_000;
      for (;;) {
        const now = await progress();
        if (now.units >= target || (now.active === 0 && now.unsent === 0) || Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 500));
      for (const worker of workers) {
        expect(await worker.kill()).not.toMatch(/Error/);
        kills++;
      }
      const left = await progress();
      if (process.env.JOURNEYS_CRASH_DEBUG) {
        const { rows: states } = await db.query('select status, count(*)::int as n from messages where workspace_id = $1 group by 1', [workspace.id]);
        console.log(`round ${round}: ${left.units}/${TOTAL} units (target ${target}), ${left.active} active, ${left.unsent} unsent, ${provider.calls()} calls; ${JSON.stringify(states)}`);
      }
      done = left.active === 0 && left.unsent === 0;
    }
    for (const spare of spares) await spare.kill();
    expect(done).toBe(true);
    expect(kills).toBeGreaterThanOrEqual(KILL_ROUNDS * WORKERS);

    // Every instance finished along the whole path, once.
    const { rows: steps } = await db.query<{ path: string }>(
      `select string_agg(node_id, ',' order by step) as path from journey_steps where workspace_id = $1 group by instance_id`,
      [workspace.id],
    );
    expect(steps.length).toBe(INSTANCES);
    expect(new Set(steps.map((s) => s.path))).toEqual(new Set(['in,first,pause,second,end']));
    const { rows: ended } = await db.query<{ status: string; n: number }>(
      'select status, count(*)::int as n from journey_instances where workspace_id = $1 group by status',
      [workspace.id],
    );
    expect(ended).toEqual([{ status: 'completed', n: INSTANCES }]);
    const { rows: exits } = await db.query<{ n: number }>(`select count(*)::int as n from events where workspace_id = $1 and event = 'Journey Exited'`, [workspace.id]);
    expect(exits[0]!.n).toBe(INSTANCES);

    // One message per send step, each sent, each delivered to the provider exactly once: the
    // provider saw exactly the messages' ids as keys and one key per (profile, template).
    const { rows: messages } = await db.query<{ id: string; profile_id: string; template_key: string; status: string }>(
      'select id, profile_id, template_key, status from messages where workspace_id = $1',
      [workspace.id],
    );
    expect(messages.length).toBe(2 * INSTANCES);
    expect(new Set(messages.map((m) => m.status))).toEqual(new Set(['sent']));
    expect(new Set(messages.map((m) => `${m.profile_id}/${m.template_key}`)).size).toBe(2 * INSTANCES);
    expect(new Set(provider.delivered.keys())).toEqual(new Set(messages.map((m) => m.id)));
    const perSend = new Map<string, number>();
    for (const { profileId, templateKey } of provider.delivered.values()) perSend.set(`${profileId}/${templateKey}`, (perSend.get(`${profileId}/${templateKey}`) ?? 0) + 1);
    expect(perSend.size).toBe(2 * INSTANCES);
    expect(Math.max(...perSend.values())).toBe(1);
    // Calls beyond one per message are resends under the same key after a crash (the provider dedups them).
    expect(provider.calls()).toBeGreaterThanOrEqual(2 * INSTANCES);
    if (process.env.JOURNEYS_CRASH_DEBUG) console.log(`${kills} kills, ${provider.calls() - 2 * INSTANCES} resends under an existing key`);
  }, 600_000);
});
