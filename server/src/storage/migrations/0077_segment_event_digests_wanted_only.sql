-- The event digests' triggers (0076) leave alone the profiles whose changed events no digest
-- holds (identify calls, events of names no active segment reads): such an event changes no
-- digest, so its statement need not lock, append to or invalidate one. Safe against a spec change
-- because the triggers read the spec under the workspace's digest lock (shared), which a spec
-- change takes exclusively: a build for a new spec starts only after every transaction that
-- filtered by the old one has committed, so its read of `events` includes their events.

create or replace function segment_digest_events_inserted() returns trigger language plpgsql as $$
begin
  perform 1 from added where profile_id is not null limit 1;
  if not found then return null; end if;
  perform pg_advisory_xact_lock_shared(hashtext('segment-digests:' || w.workspace_id::text))
     from (select distinct workspace_id from added where profile_id is not null order by 1) w;
  insert into segment_event_digests as d (workspace_id, profile_id, spec_version, complete, events)
  select a.workspace_id, a.profile_id, s.version, false,
         coalesce(jsonb_agg(segment_digest_entry(a.type, a.event, a.name, a.timestamp, a.seq, a.properties, s.keys) order by a.seq)
                    filter (where segment_digest_wants(s.kinds, a.type, a.event, a.name)), '[]'::jsonb)
    from added a join segment_event_digest_specs s on s.workspace_id = a.workspace_id
   where a.profile_id is not null
   group by a.workspace_id, a.profile_id, s.version
  having bool_or(segment_digest_wants(s.kinds, a.type, a.event, a.name))
   order by a.workspace_id, a.profile_id
  on conflict (workspace_id, profile_id) do update
     set events = case when d.complete and d.spec_version = excluded.spec_version then d.events || excluded.events end,
         complete = d.complete and d.spec_version = excluded.spec_version
   where (d.complete and (d.spec_version <> excluded.spec_version or excluded.events <> '[]'::jsonb)) or (not d.complete and d.events is not null);
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
  -- Events that got a profile (assigned, or moved by a merge or unmerge) are appended to it.
  insert into segment_event_digests as d (workspace_id, profile_id, spec_version, complete, events)
  select n.workspace_id, n.profile_id, s.version, false,
         coalesce(jsonb_agg(segment_digest_entry(n.type, n.event, n.name, n.timestamp, n.seq, n.properties, s.keys) order by n.seq)
                    filter (where segment_digest_wants(s.kinds, n.type, n.event, n.name)), '[]'::jsonb)
    from before_rows o join after_rows n on n.workspace_id = o.workspace_id and n.seq = o.seq
    join segment_event_digest_specs s on s.workspace_id = n.workspace_id
   where n.profile_id is not null and n.profile_id is distinct from o.profile_id
   group by n.workspace_id, n.profile_id, s.version
  having bool_or(segment_digest_wants(s.kinds, n.type, n.event, n.name))
   order by n.workspace_id, n.profile_id
  on conflict (workspace_id, profile_id) do update
     set events = case when d.complete and d.spec_version = excluded.spec_version then d.events || excluded.events end,
         complete = d.complete and d.spec_version = excluded.spec_version
   where (d.complete and (d.spec_version <> excluded.spec_version or excluded.events <> '[]'::jsonb)) or (not d.complete and d.events is not null);
  -- Profiles that lost events, or whose events changed: rebuilt when next read.
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
  return null;
end $$;
