import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityDrain } from '../src/identity/loop.ts';
import { createIngestLoad, SATURATED_EVENTS_IN_FLIGHT, SATURATION_SUSTAIN_MS } from '../src/ingest/load.ts';
import { startPollingLoop } from '../src/worker/polling-loop.ts';
import { startWorker, type WorkerLogLevel } from '../src/worker/runner.ts';
import { basicAuth, startTestApp, type TestApp } from './support/app.ts';

/** Polls until `probe` returns a value other than undefined, or fails after `timeoutMs`. */
async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const JOBS_OF_TASK = `
  select j.attempts, j.last_error, j.locked_at from graphile_worker._private_jobs j
    join graphile_worker._private_tasks task on task.id = j.task_id
   where task.identifier = $1`;

describe('background worker', () => {
  let t: TestApp;
  const logs: Array<{ level: WorkerLogLevel; message: string }> = [];
  const logger = (level: WorkerLogLevel, message: string) => void logs.push({ level, message });
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('builds the catalogue from collected events, then stops cleanly', async () => {
    const worker = await startWorker({ db: t.db, concurrency: 2, logger });
    try {
      const auth = { authorization: basicAuth(t.writeKey) };
      const sent = await t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: auth,
        payload: {
          batch: [
            { type: 'track', userId: 'w1', event: 'Viewed', properties: { sku: 'a' } },
            { type: 'track', userId: 'w2', event: 'Viewed', properties: { sku: 7 } },
          ],
        },
      });
      expect(sent.json()).toMatchObject({ accepted: 2 });

      const row = await eventually(async () => {
        const { rows } = await t.db.query<{ volume: number }>(
          `select volume from event_catalogue where workspace_id = $1 and event_type = 'track' and event_name = 'Viewed'`,
          [t.workspace.id],
        );
        return rows[0];
      });
      expect(row.volume).toBe(2);
      const props = await t.db.query(`select path, type_counts from event_catalogue_properties where workspace_id = $1`, [t.workspace.id]);
      expect(props.rows).toEqual([{ path: 'sku', type_counts: { string: 1, number: 1 } }]);
      const queued = await t.db.query('select count(*)::int as n from catalogue_queue');
      expect(queued.rows).toEqual([{ n: 0 }]);
    } finally {
      await worker.stop();
    }
    // Every connection the worker used (jobs, LISTEN) is back in the pool, so storage can close.
    expect(t.db.totalCount).toBe(t.db.idleCount);
    // stop() is idempotent.
    await worker.stop();
  });

  it('keeps queued observations that are malformed, with their reason, logs them and goes on with the rest', async () => {
    logs.length = 0;
    const { rows } = await t.db.query<{ id: number }>(
      `insert into catalogue_queue (workspace_id, observations) values ($1, '{"not":"an array"}'::jsonb) returning id`,
      [t.workspace.id],
    );
    const worker = await startWorker({ db: t.db, concurrency: 1, logger });
    try {
      const kept = await eventually(async () => {
        const { rows: queued } = await t.db.query<{ id: number; refused_reason: string | null }>('select id, refused_reason from catalogue_queue');
        return queued[0]?.refused_reason ? queued : undefined;
      });
      expect(kept).toEqual([{ id: rows[0]!.id, refused_reason: expect.stringMatching(/^Invalid catalogue observations at \/: Expected array/) }]);
      await eventually(async () =>
        logs.some((entry) => entry.level === 'error' && entry.message.includes(`catalogue_queue row ${rows[0]!.id}`)) ? true : undefined,
      );
      // The refused row does not hold up what ingest queues after it.
      const sent = await t.app.inject({
        method: 'POST',
        url: '/v1/track',
        headers: { authorization: basicAuth(t.writeKey) },
        payload: { userId: 'w3', event: 'After' },
      });
      expect(sent.json()).toMatchObject({ accepted: 1 });
      await eventually(async () => {
        const { rows: counted } = await t.db.query(`select volume from event_catalogue where workspace_id = $1 and event_name = 'After'`, [t.workspace.id]);
        return counted[0];
      });
    } finally {
      await worker.stop();
    }
  });

  it('stop() waits for a running job to finish', async () => {
    await t.db.query('create table worker_probe (finished_at timestamptz not null)');
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = await startWorker({
      db: t.db,
      concurrency: 1,
      logger,
      tasks: {
        'test.slow': async () => {
          started();
          await new Promise((resolve) => setTimeout(resolve, 500));
          await t.db.query('insert into worker_probe values (now())');
        },
      },
    });
    await t.db.query(`select graphile_worker.add_job('test.slow', '{}'::json)`);
    await running;
    await worker.stop();
    const { rows } = await t.db.query('select count(*)::int as n from worker_probe');
    expect(rows).toEqual([{ n: 1 }]);
    // Completed, so removed from the queue rather than left locked for a retry.
    expect((await t.db.query(JOBS_OF_TASK, ['test.slow'])).rows).toEqual([]);
  });

  it('resolves identities one batch per workspace in turn, so a backlog does not hold up another workspace', async () => {
    const other = await t.addWorkspace('second');
    const send = (writeKey: string, prefix: string, count: number) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/batch',
        headers: { authorization: basicAuth(writeKey) },
        payload: { batch: Array.from({ length: count }, (_, i) => ({ type: 'track', userId: `${prefix}${i}`, event: 'Turn' })) },
      });
    expect((await send(t.writeKey, 'a', 6)).json()).toMatchObject({ accepted: 6 });
    expect((await send(other.writeKey, 'b', 2)).json()).toMatchObject({ accepted: 2 });
    const queued = async () =>
      Object.fromEntries(
        (await t.db.query<{ workspace_id: string; n: number }>('select workspace_id, sum(events)::int as n from identity_queue group by 1')).rows.map(
          (row) => [row.workspace_id, row.n],
        ),
      );
    const drain = createIdentityDrain(t.db, 2);
    expect(await drain()).toBe(4);
    expect(await queued()).toEqual({ [t.workspace.id]: 4 });
    expect(await drain()).toBe(2);
    expect(await drain()).toBe(2);
    expect(await drain()).toBe(0);
    expect(await queued()).toEqual({});
    const { rows } = await t.db.query(`select count(*)::int as n from events where event = 'Turn' and profile_id is null`);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('steps identity resolution back while the API of its process is saturated, for at most a bounded time', async () => {
    const sent = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basicAuth(t.writeKey) },
      payload: { batch: [{ type: 'track', userId: 'burst-1', event: 'Burst' }] },
    });
    expect(sent.json()).toMatchObject({ accepted: 1 });
    const ingestLoad = createIngestLoad();
    ingestLoad.enter().carry(SATURATED_EVENTS_IN_FLIGHT);
    // Saturation counts once it has lasted (ingest/load.ts).
    await new Promise((resolve) => setTimeout(resolve, SATURATION_SUSTAIN_MS));
    const started = Date.now();
    const worker = await startWorker({ db: t.db, concurrency: 1, logger, ingestLoad, maxStepBackMs: 2000 });
    try {
      const unresolved = async () =>
        (await t.db.query<{ n: number }>(`select count(*)::int as n from events where event = 'Burst' and profile_id is null`)).rows[0]!.n;
      // Every look that starts well inside the step-back (2 s here) still finds the event queued;
      // the saturation never ends, yet the event is resolved after the step-back.
      let early = 0;
      await eventually(async () => {
        const lookedAt = Date.now() - started;
        const n = await unresolved();
        if (lookedAt < 1500) {
          early += 1;
          expect(n).toBe(1);
        }
        return n === 0 ? true : undefined;
      });
      expect(early).toBeGreaterThan(0);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    } finally {
      await worker.stop();
    }
  });

  it('refuses to replace a built-in task', async () => {
    await expect(startWorker({ db: t.db, concurrency: 1, logger, tasks: { 'identity.match': async () => undefined } })).rejects.toThrow(
      /built in/,
    );
  });
});

describe('polling loop', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('repeats while there is work, waits pollMs when idle, and reports errors without spinning', async () => {
    // Assertions run between the loop's timers (pollMs apart), which fire in order of expiry.
    const pollMs = 300;
    const calls: number[] = [];
    const backlog = [3, 2, 0, 0];
    const errors: string[] = [];
    let failNext = false;
    const start = Date.now();
    const loop = startPollingLoop({
      name: 'test',
      pollMs,
      drainOnce: async () => {
        calls.push(Date.now() - start);
        if (failNext) {
          failNext = false;
          throw new Error('boom');
        }
        return backlog.shift() ?? 0;
      },
      onError: (error, name) => errors.push(`${name}: ${(error as Error).message}`),
    });
    try {
      await sleep(pollMs / 3);
      // 3, 2, then 0: three calls back to back, then the idle wait.
      expect(calls).toHaveLength(3);
      failNext = true;
      await sleep(pollMs);
      // The next look came after pollMs, and its error was reported.
      expect(calls).toHaveLength(4);
      expect(calls[3]! - calls[2]!).toBeGreaterThanOrEqual(pollMs - 20);
      expect(errors).toEqual(['test: boom']);
      await sleep(pollMs);
      // After the error the loop waited pollMs again rather than retrying at once.
      expect(calls).toHaveLength(5);
      expect(calls[4]! - calls[3]!).toBeGreaterThanOrEqual(pollMs - 20);
    } finally {
      await loop.stop();
    }
  });

  it('stop() waits for the running iteration and ends the idle wait at once', async () => {
    let finished = false;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const busy = startPollingLoop({
      name: 'busy',
      pollMs: 10_000,
      drainOnce: async () => {
        started();
        await sleep(300);
        finished = true;
        return 0;
      },
    });
    await running;
    await busy.stop();
    expect(finished).toBe(true);

    const idle = startPollingLoop({ name: 'idle', pollMs: 60_000, drainOnce: async () => 0 });
    await sleep(20);
    const before = Date.now();
    await idle.stop();
    await idle.stop();
    expect(Date.now() - before).toBeLessThan(1000);
  });
});
