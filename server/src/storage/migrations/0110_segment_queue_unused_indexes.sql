-- segment_queue (queued_at) and segment_rechecks (due_at), from 0007, have not been read since 0011
-- made every take per workspace: (workspace_id, queued_at) and (workspace_id, due_at) serve the
-- drain's takes and its workspace probes. They were still written: every queue insert (each
-- ingest or resolution statement queues the profiles it touched), and every re-check the drain
-- moves, which is never a HOT update (due_at is indexed), added an entry to each.
drop index if exists segment_queue_oldest;
drop index if exists segment_rechecks_due;
