import type { TaskList } from 'graphile-worker';
import { activationTasks } from '../activation/sync.ts';
import { runMatchingJob } from '../identity/matching-job.ts';
import { runComputeJob } from '../segments/computed/compute.ts';
import { runModelJob } from '../models/run.ts';
import type { Db } from '../storage/database.ts';

/**
 * Every graphile-worker task, by the name others enqueue: work that is occasional, scheduled or
 * needs retries. What every ingest request feeds (identity resolution, the catalogue) goes
 * through queue tables instead, drained by polling loops (runner.ts).
 */
export function createTaskList(db: Db): TaskList {
  return {
    'identity.match': async (payload) => {
      await runMatchingJob(db, payload);
    },
    ...activationTasks({ db }),
    'computed-traits.compute': async (payload) => {
      await runComputeJob(db, payload);
    },
    'models.run': (payload) => runModelJob(db, payload),
  };
}
