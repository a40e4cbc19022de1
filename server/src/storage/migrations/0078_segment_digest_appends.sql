-- The event digests (0076, 0077) cost ingestion too much: every event of a known profile rewrote
-- its profile's digest row, a whole row of JSON on a random page (a full-page image after each
-- checkpoint), and at a million profiles the ingest statement became WAL-bound (LWLock:WALWrite
-- 31.5 % of samples). Now the triggers append: the new events of a profile go, as digest entries,
-- into a small row of `segment_digest_appends` (one per profile and statement; heap inserts go to
-- the table's end, its one index is small because appends are short-lived), and the drain folds a
-- profile's pending appends into its digest when it reads it (segments/digests.ts), deleting them
-- in the same transaction: the digest row is rewritten once per evaluation, not once per event.
--
-- What stays as it was: an event that leaves a profile, or changes in place, or is deleted,
-- invalidates the profile's digest (it is rebuilt from `events` when next read); truncate empties
-- everything. An invalidation now also deletes the profile's pending appends (erasure, suppression
-- and retention remove the data from them too), after it has written (and so locked) the digest
-- row: every writer takes a profile's digest row before its appends (the drain's fold and build do
-- too), so they never wait for each other in a cycle.
--
-- Why nothing is lost or folded twice: an event and its append are written by one statement and
-- committed together. A fold deletes the appends it folds, in the statement that writes the digest
-- (one snapshot; an append committed after it stays pending). A build reads `events` and deletes
-- the profile's appends in one statement, so an append is either of an event the build read
-- (deleted) or of one it did not see (kept, folded later). Appends carry the spec version they were
-- made with; a fold that finds another version than the digest's rebuilds the digest instead.

create table segment_digest_appends (
  workspace_id uuid not null,
  profile_id uuid not null,
  spec_version integer not null,
  -- The smallest seq of the entries: folds keep the order the events were appended in.
  seq bigint not null,
  entries jsonb not null
) with (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);

create index segment_digest_appends_profile on segment_digest_appends (workspace_id, profile_id);

create or replace function segment_digest_events_inserted() returns trigger language plpgsql as $$
begin
  perform 1 from added where profile_id is not null limit 1;
  if not found then return null; end if;
  perform pg_advisory_xact_lock_shared(hashtext('segment-digests:' || w.workspace_id::text))
     from (select distinct workspace_id from added where profile_id is not null order by 1) w;
  insert into segment_digest_appends (workspace_id, profile_id, spec_version, seq, entries)
  select a.workspace_id, a.profile_id, s.version, min(a.seq),
         jsonb_agg(segment_digest_entry(a.type, a.event, a.name, a.timestamp, a.seq, a.properties, s.keys) order by a.seq)
    from added a join segment_event_digest_specs s on s.workspace_id = a.workspace_id
   where a.profile_id is not null and segment_digest_wants(s.kinds, a.type, a.event, a.name)
   group by a.workspace_id, a.profile_id, s.version;
  return null;
end $$;

create or replace function segment_digest_events_updated() returns trigger language plpgsql as $$
begin
  perform 1
     from before_rows o join after_rows n on n.workspace_id = o.workspace_id and n.seq = o.seq
    where n.profile_id is distinct from o.profile_id
       or (o.profile_id is not null and (o.type, o.event, o.name, o.timestamp, o.properties) is distinct from (n.type, n.event, n.name, n.timestamp, n.properties))
    limit 1;
  if not found then return null; end if;
  perform pg_advisory_xact_lock_shared(hashtext('segment-digests:' || w.workspace_id::text))
     from (select distinct workspace_id from after_rows order by 1) w;
  -- Profiles that lost events, or whose events changed: rebuilt when next read; their pending
  -- appends go (the digest row first, see above).
  -- (ON CONFLICT locks the row even when its WHERE leaves it as it is.)
  insert into segment_event_digests as d (workspace_id, profile_id, spec_version, complete, events)
  select distinct o.workspace_id, o.profile_id, 0, false, null::jsonb
    from before_rows o join after_rows n on n.workspace_id = o.workspace_id and n.seq = o.seq
    join segment_event_digest_specs s on s.workspace_id = o.workspace_id
   where o.profile_id is not null
     and (o.profile_id is distinct from n.profile_id
          or (o.type, o.event, o.name, o.timestamp, o.properties) is distinct from (n.type, n.event, n.name, n.timestamp, n.properties))
     and (segment_digest_wants(s.kinds, o.type, o.event, o.name) or segment_digest_wants(s.kinds, n.type, n.event, n.name))
   order by 1, 2
  on conflict (workspace_id, profile_id) do update set complete = false, events = null
   where d.complete or d.events is not null;
  delete from segment_digest_appends a
   using (select distinct o.workspace_id, o.profile_id
            from before_rows o join after_rows n on n.workspace_id = o.workspace_id and n.seq = o.seq
            join segment_event_digest_specs s on s.workspace_id = o.workspace_id
           where o.profile_id is not null
             and (o.profile_id is distinct from n.profile_id
                  or (o.type, o.event, o.name, o.timestamp, o.properties) is distinct from (n.type, n.event, n.name, n.timestamp, n.properties))
             and (segment_digest_wants(s.kinds, o.type, o.event, o.name) or segment_digest_wants(s.kinds, n.type, n.event, n.name))) x
   where a.workspace_id = x.workspace_id and a.profile_id = x.profile_id;
  -- Events that got a profile (assigned, or moved by a merge or unmerge) are appended to it.
  insert into segment_digest_appends (workspace_id, profile_id, spec_version, seq, entries)
  select n.workspace_id, n.profile_id, s.version, min(n.seq),
         jsonb_agg(segment_digest_entry(n.type, n.event, n.name, n.timestamp, n.seq, n.properties, s.keys) order by n.seq)
    from before_rows o join after_rows n on n.workspace_id = o.workspace_id and n.seq = o.seq
    join segment_event_digest_specs s on s.workspace_id = n.workspace_id
   where n.profile_id is not null and n.profile_id is distinct from o.profile_id
     and segment_digest_wants(s.kinds, n.type, n.event, n.name)
   group by n.workspace_id, n.profile_id, s.version;
  return null;
end $$;

create or replace function segment_digest_events_deleted() returns trigger language plpgsql as $$
begin
  perform 1 from removed where profile_id is not null limit 1;
  if not found then return null; end if;
  perform pg_advisory_xact_lock_shared(hashtext('segment-digests:' || w.workspace_id::text))
     from (select distinct workspace_id from removed where profile_id is not null order by 1) w;
  insert into segment_event_digests as d (workspace_id, profile_id, spec_version, complete, events)
  select distinct r.workspace_id, r.profile_id, 0, false, null::jsonb
    from removed r join segment_event_digest_specs s on s.workspace_id = r.workspace_id
   where r.profile_id is not null and segment_digest_wants(s.kinds, r.type, r.event, r.name)
   order by 1, 2
  on conflict (workspace_id, profile_id) do update set complete = false, events = null
   where d.complete or d.events is not null;
  delete from segment_digest_appends a
   using (select distinct r.workspace_id, r.profile_id
            from removed r join segment_event_digest_specs s on s.workspace_id = r.workspace_id
           where r.profile_id is not null and segment_digest_wants(s.kinds, r.type, r.event, r.name)) x
   where a.workspace_id = x.workspace_id and a.profile_id = x.profile_id;
  return null;
end $$;

create or replace function segment_digest_events_truncated() returns trigger language plpgsql as $$
begin
  delete from segment_event_digests;
  delete from segment_digest_appends;
  return null;
end $$;
