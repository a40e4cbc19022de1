/*
 * A journey worker process for journeys-crash.test.ts: advances due instances on the database at
 * argv[2] with the recording enqueue, forever, until the test kills it with SIGKILL. Its clock
 * runs 1,000 times faster than real time from argv[3], so a one-minute delay passes in 60 ms.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { advanceDueInstances, type EnqueueMessages } from '../src/journeys/executor.ts';
import { createPool } from '../src/storage/database.ts';
import { recordingEnqueue } from './journeys-support.ts';

const [url, startArg] = process.argv.slice(2);
const db = createPool(url!, 4);
const origin = Number(startArg);
const realStart = Date.now();
const now = () => new Date(origin + (Date.now() - realStart) * 1000);
// A little latency per send, so a kill lands inside batches rather than between them.
const slowEnqueue: EnqueueMessages = async (client, requests, at) => {
  await sleep(Math.random() * 3);
  return recordingEnqueue(client, requests, at);
};

for (;;) {
  const { taken } = await advanceDueInstances({ db, enqueue: slowEnqueue, now }, 20);
  if (taken === 0) await sleep(20);
}
