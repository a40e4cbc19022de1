import { Logger, parseCronItems, run, type Runner } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activationTasks } from '../src/activation/sync.ts';
import { createProfiles, createSegment, startActivationApp, startReceiver, transition, type ActivationTestApp, type Receiver } from './activation-support.ts';

async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The sweep and sync tasks under a real graphile-worker: connecting a segment is all it takes. */
describe('activation tasks in the worker', () => {
  let t: ActivationTestApp;
  let receiver: Receiver;
  let runner: Runner;
  let secret = '';
  const errors: string[] = [];

  beforeAll(async () => {
    t = await startActivationApp();
    receiver = await startReceiver(() => secret, [{ status: 500 }]);
    runner = await run({
      pgPool: t.db,
      concurrency: 2,
      pollInterval: 50,
      noHandleSignals: true,
      taskList: activationTasks({ db: t.db }, 100),
      parsedCronItems: parseCronItems([]),
      logger: new Logger(() => (level, message) => {
        if (level === 'error') errors.push(message);
      }),
    });
  });
  afterAll(async () => {
    await runner?.stop();
    await receiver?.close();
    await t?.close();
  });

  it('delivers membership changes of a connected segment, retrying the failed first attempt', async () => {
    const destination = (
      await t.call('POST', '/v1/destinations', { name: 'Live', url: receiver.url, settings: { backoffBaseMs: 100, backoffMaxMs: 200 } })
    ).json();
    secret = destination.secret;
    const segment = await createSegment(t.db, t.workspaceId, 'live');
    expect((await t.call('POST', `/v1/destinations/${destination.id}/segments`, { segment: 'live' })).statusCode).toBe(201);
    const profiles = await createProfiles(t.db, t.workspaceId, [{ email: 'w1@x.cn' }, { email: 'w2@x.cn' }]);
    const entered = await transition(t.db, t.workspaceId, segment, profiles, true);
    const exited = await transition(t.db, t.workspaceId, segment, [profiles[0]!], false);

    const changes = await eventually(() => {
      const all = receiver.applied.flatMap((b) => b.changes);
      return all.length >= 3 ? all : undefined;
    });
    expect(changes.map((c) => c.transitionId)).toEqual([...entered, ...exited].map((r) => r.id));
    expect(receiver.requests.map((r) => r.status)).toEqual([500, 200, 200].slice(0, receiver.requests.length));
    expect(receiver.requests.every((r) => r.signatureOk)).toBe(true);
    expect(errors).toEqual([]);

    // Nothing is sent twice while the sweep keeps running.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(receiver.applied.flatMap((b) => b.changes)).toHaveLength(3);
  });
});
