import type { TaskList } from 'graphile-worker';
import { applyCatalogueJob } from '../catalogue/store.ts';
import { runMatchingJob } from '../identity/matching-job.ts';
import type { Db } from '../storage/database.ts';

/**
 * Every background task, by the name ingest and others enqueue. Later stages (identity
 * resolution, profile updates, segment evaluation) add their tasks here.
 */
export function createTaskList(db: Db): TaskList {
  return {
    'catalogue.observe': async (payload) => {
      await applyCatalogueJob(db, payload);
    },
    'identity.match': async (payload) => {
      await runMatchingJob(db, payload);
    },
  };
}
