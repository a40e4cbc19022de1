import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type RunningWorker, type WorkerLogLevel } from '../src/worker/runner.ts';
import { profileUrl, send, serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/** Polls until `probe` returns a value other than undefined, or fails after `timeoutMs`. */
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
 * Computed traits under the real worker: the API queues the full computation, the worker runs it,
 * and from then on a new event updates the value (and a segment reading it) with no other call.
 */
describe('computed traits in the worker', () => {
  let t: TestApp;
  let worker: RunningWorker;
  let key: string;
  const errors: string[] = [];
  const logger = (level: WorkerLogLevel, message: string) => {
    if (level === 'error') errors.push(message);
  };
  const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload === undefined ? {} : { payload }) });
  const order = (userId: string, messageId: string) => ({
    type: 'track',
    event: 'Order Completed',
    userId,
    messageId,
    timestamp: new Date(Date.now() - 60_000).toISOString(),
    properties: { revenue: 10 },
  });

  beforeAll(async () => {
    t = await startTestApp();
    key = await serverKey(t);
    worker = await startWorker({ db: t.db, concurrency: 1, logger });
  });
  afterAll(async () => {
    await worker?.stop();
    await t?.close();
  });

  it('computes on create, then follows new events into the profile and into segments', async () => {
    await send(t, t.writeKey, [order('u1', 'o1'), order('u2', 'o2')]);
    await eventually(async () => ((await call('GET', profileUrl('user_id:u2'))).statusCode === 200 ? true : undefined));

    const created = await call('POST', '/v1/computed-traits', {
      key: 'orders',
      name: 'Orders',
      definition: { kind: 'count', match: { type: 'track', name: 'Order Completed', filters: [] } },
    });
    expect(created.statusCode, created.body).toBe(201);
    const ready = await eventually<{ computedAt: string | null }>(async () => {
      const res = await call('GET', '/v1/computed-traits/orders');
      return res.json().state === 'ready' ? res.json() : undefined;
    });
    expect(ready.computedAt).not.toBeNull();
    expect((await call('GET', profileUrl('user_id:u1'))).json().traits.orders).toBe(1);

    await t.db.query(
      `insert into segments (workspace_id, key, name, kind, definition, state) values ($1, 'repeat', 'Repeat buyers', 'realtime', $2, 'ready')`,
      [t.workspace.id, JSON.stringify({ kind: 'trait', trait: 'orders', op: 'gte', value: 2 })],
    );
    await send(t, t.writeKey, [order('u1', 'o3')]);
    const timeline = await eventually(async () => {
      const res = await call('GET', profileUrl('user_id:u1', '/events?limit=50'));
      const names = (res.json().items as Array<{ event: string | null }>).map((item) => item.event);
      return names.includes('Segment Entered') ? res.json().items : undefined;
    });
    const changed = (timeline as Array<{ event: string | null; properties: Record<string, unknown> }>).filter(
      (item) => item.event === 'Computed Trait Changed',
    );
    expect(changed.map((item) => item.properties)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ trait: 'orders', previous: null, value: 1, cause: 'compute' }),
        expect.objectContaining({ trait: 'orders', previous: 1, value: 2, cause: 'event' }),
      ]),
    );
    expect((await call('GET', profileUrl('user_id:u1'))).json().traits.orders).toBe(2);
    expect(errors).toEqual([]);
  });
});
