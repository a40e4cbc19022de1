-- Analytics: the columnar copy of the events (server/src/analytics/columnar, a DuckDB file in the
-- data folder) follows `events` by seq; merges and unmerges it follows through identity_merges.
-- Deletions (erasure, suppression, retention's row deletes) leave no trace to follow, so a
-- statement-level trigger logs the seqs of deleted events here; the copy's sync deletes them and
-- removes the log rows it applied. Statement-level with a transition table: one insert per delete
-- statement, nothing on insert or update (ingest and identity resolution pay nothing).
create table analytics_event_deletions (
  id bigserial primary key,
  workspace_id uuid not null,
  seq bigint not null
);

create function analytics_log_event_deletions() returns trigger language plpgsql as $$
begin
  insert into analytics_event_deletions (workspace_id, seq) select workspace_id, seq from gone;
  return null;
end $$;

create trigger events_log_deletions after delete on events
  referencing old table as gone for each statement execute function analytics_log_event_deletions();
