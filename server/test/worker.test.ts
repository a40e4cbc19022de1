import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
      await eventually(async () => ((await t.db.query(JOBS_OF_TASK, ['catalogue.observe'])).rows.length === 0 ? true : undefined));
    } finally {
      await worker.stop();
    }
    // Every connection the worker used (jobs, LISTEN) is back in the pool, so storage can close.
    expect(t.db.totalCount).toBe(t.db.idleCount);
    // stop() is idempotent.
    await worker.stop();
  });

  it('keeps a job whose payload is malformed, with its error, and logs it', async () => {
    logs.length = 0;
    await t.db.query(`select graphile_worker.add_job('catalogue.observe', '{"not":"an array"}'::json, max_attempts => 1)`);
    const worker = await startWorker({ db: t.db, concurrency: 1, logger });
    try {
      const job = await eventually(async () => {
        const { rows } = await t.db.query<{ attempts: number; last_error: string | null }>(JOBS_OF_TASK, ['catalogue.observe']);
        return rows[0]?.attempts === 1 ? rows[0] : undefined;
      });
      expect(job.last_error).toMatch(/Invalid catalogue\.observe payload/);
      await eventually(async () => (logs.some((entry) => entry.level === 'error' && /catalogue\.observe/.test(entry.message)) ? true : undefined));
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

  it('refuses to replace a built-in task', async () => {
    await expect(startWorker({ db: t.db, concurrency: 1, logger, tasks: { 'catalogue.observe': async () => undefined } })).rejects.toThrow(
      /built in/,
    );
  });
});
