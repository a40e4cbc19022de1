-- Catalogue observations waiting for the worker (catalogue/store.ts drainCatalogueQueue). Each
-- ingest transaction appends one row for the events it stored: a plain insert, so requests never
-- wait on one another, unlike the keyed graphile-worker job this replaces, which every request
-- rewrote under a row lock and which dropped appends racing the worker (graphile-worker #580).
-- The drain deletes the rows it applies in the same transaction: each observation counts once.
create table catalogue_queue (
  workspace_id uuid not null,
  id bigint generated always as identity,
  observations jsonb not null,
  -- Why the drain refused the row (not the shape ingest writes). Such rows stay here for a human
  -- to inspect and are never picked up again, so they cannot block the queue.
  refused_reason text,
  primary key (workspace_id, id)
);
-- The drain takes the oldest pending rows of all workspaces first.
create index catalogue_queue_pending on catalogue_queue (id) where refused_reason is null;

-- Observations still waiting in `catalogue.observe` jobs of a database migrated before this file
-- move to the queue, so upgrading loses none (the drain checks their shape like any other row).
-- graphile-worker's schema exists only once a worker or `touchpoint migrate` has run. A job the
-- old worker holds locked, or one not shaped as ingest wrote it, stays where it is.
do $$
begin
  if to_regclass('graphile_worker._private_jobs') is null then
    return;
  end if;
  with moved as (
    delete from graphile_worker._private_jobs j
     using graphile_worker._private_tasks t
     where t.id = j.task_id and t.identifier = 'catalogue.observe' and j.locked_at is null
       and jsonb_typeof(j.payload::jsonb) = 'array'
       and not exists (
         select from jsonb_array_elements(j.payload::jsonb) as entry
          where (entry->>'workspaceId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') is not true)
    returning j.payload::jsonb as payload
  )
  insert into catalogue_queue (workspace_id, observations)
  select (entry->>'workspaceId')::uuid, coalesce(entry->'observations', 'null'::jsonb)
    from moved, jsonb_array_elements(moved.payload) as entry;
end
$$;
