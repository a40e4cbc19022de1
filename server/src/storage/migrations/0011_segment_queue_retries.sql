-- A profile whose real-time evaluation fails stays queued and is retried later with a growing
-- delay, so one bad profile neither blocks the queue nor is dropped.
alter table segment_queue add column failed_attempts integer not null default 0;
alter table segment_queue add column next_attempt_at timestamptz;
alter table segment_queue add column last_error text;

alter table segment_rechecks add column failed_attempts integer not null default 0;
alter table segment_rechecks add column last_error text;

-- The drain takes one workspace's oldest queued profiles and its due re-checks: both as index
-- ranges within the workspace rather than walks of the global (queued_at) / (due_at) indexes.
create index segment_queue_workspace_oldest on segment_queue (workspace_id, queued_at);
create index segment_rechecks_workspace_due on segment_rechecks (workspace_id, due_at);
