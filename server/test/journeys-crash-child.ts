/*
 * A worker process for journeys-crash.test.ts: the journey executor with channels' real enqueue,
 * and the channels dispatcher (with its reconcile step) calling the test's fake webhook provider,
 * on the database at argv[2], forever, until the test kills it with SIGKILL. It connects, says
 * "ready" and waits for a line on stdin before working, so the test can start it ahead of time.
 * Its clock runs SPEED times faster than real time from argv[3] (shared by every child, so time
 * never goes back between them): a one-minute delay passes in 0.6 s, a 2 s lease in 2 s real.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDispatcher } from '../src/channels/dispatch.ts';
import { enqueueMessages } from '../src/channels/enqueue.ts';
import { advanceDueInstances, type EnqueueMessages } from '../src/journeys/executor.ts';
import { createPool } from '../src/storage/database.ts';

const SPEED = 100;
const [url, originArg, secretsHex] = process.argv.slice(2);
const db = createPool(url!, 8);
const origin = Number(originArg);
const now = () => new Date(origin + (Date.now() - origin) * SPEED);
await db.query('select 1');
process.stdout.write('ready\n');
await once(process.stdin, 'data');

// A little latency per batch, so kills land inside batches rather than between them.
const slowEnqueue: EnqueueMessages = async (client, requests, at) => {
  await sleep(Math.random() * 20);
  return enqueueMessages(client, requests, at);
};
const dispatcher = createDispatcher({
  db,
  secretsKey: Buffer.from(secretsHex!, 'hex'),
  publicUrl: 'http://127.0.0.1:9',
  now,
  batchSize: 20,
  concurrency: 20,
  backoffBaseMs: 100,
  // A `sending` message older than 2 s real is a crashed send: the webhook adapter is idempotent,
  // so reconcile queues it again under the same key.
  leaseMs: 2_000 * SPEED,
});

const forever = async (work: () => Promise<number>, idleMs: number) => {
  for (;;) if ((await work()) === 0) await sleep(idleMs);
};
// Dispatch batches commit their outcomes when every call of the batch has answered: several small
// batches at once keep the unsettled window short and the provider busy.
await Promise.all([
  forever(async () => (await advanceDueInstances({ db, enqueue: slowEnqueue, now }, 200)).taken, 20),
  ...Array.from({ length: 4 }, () => forever(() => dispatcher.dispatchOnce(), 20)),
  forever(async () => (await dispatcher.reconcileOnce(), 0), 300),
]);
