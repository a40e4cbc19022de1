import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JourneyDefinition } from '../src/journeys/definition.ts';
import { enterProfiles } from '../src/journeys/executor.ts';
import { createJourney, publishJourney } from '../src/journeys/store.ts';
import { prepareTransitionStorage } from '../src/segments/transitions.ts';
import { withTransaction } from '../src/storage/database.ts';
import { createWorkspace } from '../src/workspaces/store.ts';
import { createRecordingOutbox } from './journeys-support.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'journeys-crash-child.ts');
// The 1,000 (JOURNEYS_CRASH_INSTANCES=1000) takes minutes on a shared two-core machine.
const INSTANCES = Number(process.env.JOURNEYS_CRASH_INSTANCES ?? 300);

const definition: JourneyDefinition = {
  nodes: [
    { id: 'in', kind: 'entry', trigger: { kind: 'api' }, next: 'email' },
    { id: 'email', kind: 'send', channel: 'email', template: 'first', purpose: 'marketing', next: 'pause' },
    { id: 'pause', kind: 'delay', duration: { amount: 1, unit: 'minutes' }, next: 'sms' },
    { id: 'sms', kind: 'send', channel: 'sms', template: 'second', purpose: 'marketing', next: 'end' },
    { id: 'end', kind: 'end' },
  ],
};

describe('journey executor crash safety', () => {
  let database: TestDatabase;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    database = await createTestDatabase();
    await createRecordingOutbox(database.db);
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await database.drop();
  });

  const startWorker = (origin: number) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, database.url, String(origin)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    children.add(child);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    return {
      kill: async () => {
        child.kill('SIGKILL');
        await exited;
        children.delete(child);
        return stderr;
      },
    };
  };

  it(`SIGKILLed workers at random points across ${INSTANCES} instances: after restarts every message is enqueued exactly once`, async () => {
    const db = database.db;
    const origin = Date.now();
    const workspace = await createWorkspace(db, { slug: 'crash', name: 'crash' });
    const journey = await createJourney(db, workspace.id, { key: 'two-step', name: 'Two steps', definition });
    await publishJourney(db, workspace.id, 'two-step', new Date(origin));
    const { rows: profiles } = await db.query<{ id: string }>(
      'insert into profiles (workspace_id) select $1 from generate_series(1, $2) returning id',
      [workspace.id, INSTANCES],
    );
    await prepareTransitionStorage(db, new Date(origin));
    await withTransaction(db, (client) => enterProfiles(client, workspace.id, journey.id, profiles.map((p) => ({ profileId: p.id, entry: 'api' as const })), new Date(origin)));

    const remaining = async () =>
      (await db.query<{ n: number }>(`select count(*)::int as n from journey_instances where workspace_id = $1 and status = 'active'`, [workspace.id])).rows[0]!.n;
    let kills = 0;
    let done = false;
    const sent = async () => (await db.query<{ n: number }>('select count(*)::int as n from test_outbox where workspace_id = $1', [workspace.id])).rows[0]!.n;
    // Two workers at a time. Once they have committed something (starting takes seconds on a
    // loaded machine), both are killed after a random 0–2 s more: mid-batch, between batches,
    // mid-commit, wherever that lands. Until every instance has ended.
    for (let round = 0; round < 300 && !done; round++) {
      const before = await sent();
      const workers = [startWorker(origin), startWorker(origin)];
      const deadline = Date.now() + 60_000;
      while ((await sent()) === before && (await remaining()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2000));
      for (const worker of workers) {
        const stderr = await worker.kill();
        expect(stderr).not.toMatch(/Error/);
        kills++;
      }
      const left = await remaining();
      if (process.env.JOURNEYS_CRASH_DEBUG) console.log(`round ${round}: ${left} active, ${await sent()} sent`);
      done = left === 0;
    }
    expect(done).toBe(true);
    expect(kills).toBeGreaterThanOrEqual(4);

    const { rows: outbox } = await db.query<{ rows: number; keys: number; per_profile_max: number }>(
      `select count(*)::int as rows, count(distinct idempotency_key)::int as keys,
              (select max(n) from (select count(*)::int as n from test_outbox where workspace_id = $1 group by profile_id, template_key) c) as per_profile_max
         from test_outbox where workspace_id = $1`,
      [workspace.id],
    );
    expect(outbox[0]).toEqual({ rows: 2 * INSTANCES, keys: 2 * INSTANCES, per_profile_max: 1 });
    const { rows: steps } = await db.query<{ path: string; n: number }>(
      `select string_agg(node_id, ',' order by step) as path, count(*)::int as n from journey_steps where workspace_id = $1 group by instance_id`,
      [workspace.id],
    );
    expect(steps.length).toBe(INSTANCES);
    expect(new Set(steps.map((s) => s.path))).toEqual(new Set(['in,email,pause,sms,end']));
    const { rows: exits } = await db.query<{ n: number }>(
      `select count(*)::int as n from events where workspace_id = $1 and event = 'Journey Exited'`,
      [workspace.id],
    );
    expect(exits[0]!.n).toBe(INSTANCES);
  }, 600_000);
});
