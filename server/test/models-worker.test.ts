import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type RunningWorker } from '../src/worker/runner.ts';
import { send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The real worker trains a new model at once, then schedules the next run scheduleHours later
 * (one pending scheduled job per model); a run requested through the API runs too.
 */
describe('models in the worker', () => {
  let t: TestApp;
  let worker: RunningWorker;
  let key: string;
  const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });

  beforeAll(async () => {
    t = await startTestApp();
    key = await serverKey(t);
    worker = await startWorker({ db: t.db, concurrency: 1, logger: () => undefined });
  });
  afterAll(async () => {
    await worker?.stop();
    await t?.close();
  });

  it('runs on create and on request, and keeps one scheduled run a day ahead', async () => {
    const day = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
    await send(
      t,
      t.writeKey,
      ['a', 'b', 'c'].flatMap((user, i) =>
        Array.from({ length: i + 1 }, (_, k) => ({ type: 'track', event: 'Order Completed', userId: user, messageId: `${user}-${k}`, timestamp: day(10 * k + i), properties: { revenue: 10 } })),
      ),
    );
    await eventually(async () => {
      const { rows } = await t.db.query(`select 1 from profiles where workspace_id = $1`, [t.workspace.id]);
      return rows.length === 3 ? true : undefined;
    });
    const created = await call('POST', '/v1/models', { key: 'rfm', name: 'RFM', config: { kind: 'rfm' } });
    expect(created.statusCode, created.body).toBe(201);
    const first = await eventually(async () => {
      const run = (await call('GET', '/v1/models/rfm')).json().lastRun;
      return run?.status === 'succeeded' ? run : undefined;
    });
    expect(first).toMatchObject({ trigger: 'schedule', profilesScored: 3 });
    // The finished job is gone and the next one waits a day (scheduleHours 24).
    const next = await eventually(async () => {
      const { rows } = await t.db.query<{ run_at: Date; key: string }>(`select run_at, key from graphile_worker.jobs where task_identifier = 'models.run'`);
      return rows.length === 1 && rows[0]!.key === `models.run:${created.json().id}` && rows[0]!.run_at.getTime() - Date.now() > 23 * 3_600_000 ? rows : undefined;
    });
    expect(next).toHaveLength(1);

    const requested = await call('POST', '/v1/models/rfm/runs');
    expect(requested.statusCode).toBe(202);
    const done = await eventually(async () => {
      const run = (await call('GET', `/v1/models/rfm/runs/${requested.json().id}`)).json();
      return run.status === 'succeeded' ? run : undefined;
    });
    expect(done).toMatchObject({ trigger: 'api', profilesScored: 3, profilesChanged: 0 });
  });
});
