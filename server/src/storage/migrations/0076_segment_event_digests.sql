-- The real-time segment drain's compact per-profile store (server/src/segments/digests.ts): per
-- profile one row holding, as a JSON array, the profile's events the workspace's active real-time
-- segments and computed traits can read (by type and name), each as [seq, type, name, epoch ms,
-- the properties they read]. Reading it is one primary-key probe per profile instead of one index
-- descent per monthly partition of `events` plus a heap visit per event.
--
-- What the store holds is described by the workspace's spec (kinds: 'track:<event>', 'page:<name>',
-- 'page:*' …; keys: top-level property keys kept, null for all). A digest is usable only when
-- `complete` and at the current spec version; anything else is rebuilt from `events` by the drain.
--
-- Kept in step by statement-level triggers on `events`, so every path that gives an event a
-- profile, moves it or removes it (ingest of known people, identity assignment, merge, unmerge,
-- erasure, suppression, retention, event deletion) maintains it in its own transaction:
--   insert            → the new events are appended to their profiles' complete digests;
--   update            → events that got a profile are appended to it; a profile that lost events
--                        or whose events changed is invalidated (rebuilt when next read);
--   delete / truncate → the profiles are invalidated (truncate: every digest goes).
-- A trigger always writes the profile's row (creating an incomplete one when absent), so a build
-- racing it is safe: the builder creates and locks the rows before it reads `events`, and a
-- trigger that ran first has committed by then (the builder waited for it), one that runs later
-- waits for the builder and appends to or invalidates what it built. Spec changes take the
-- workspace's digest lock exclusively; the triggers take it shared before reading the spec.

create table segment_event_digest_specs (
  workspace_id uuid primary key references workspaces (id) on delete cascade,
  version integer not null,
  kinds text[] not null,
  keys text[]
);

create table segment_event_digests (
  workspace_id uuid not null,
  profile_id uuid not null,
  spec_version integer not null,
  complete boolean not null,
  events jsonb,
  primary key (workspace_id, profile_id)
) with (fillfactor = 70);

-- Whether the spec's kinds take an event of this type and name.
create function segment_digest_wants(kinds text[], type text, event text, name text) returns boolean
language sql immutable parallel safe as $$
  select (type || ':*') = any(kinds) or (type || ':' || case when type = 'track' then event else name end) = any(kinds)
$$;

-- One event as the digest holds it: [seq, type, name, epoch ms, properties (only `keys`, or all when null)].
create function segment_digest_entry(type text, event text, name text, at timestamptz, seq bigint, properties jsonb, keys text[]) returns jsonb
language sql immutable parallel safe as $$
  select jsonb_build_array(
    seq, type, case when type = 'track' then event else name end, floor(extract(epoch from at) * 1000),
    case when keys is null or jsonb_typeof(properties) is distinct from 'object' then properties
         else (select jsonb_object_agg(p.key, p.value) from jsonb_each(properties) p where p.key = any(keys)) end)
$$;

create function segment_digest_events_inserted() returns trigger language plpgsql as $$
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
   order by a.workspace_id, a.profile_id
  on conflict (workspace_id, profile_id) do update
     set events = case when d.complete and d.spec_version = excluded.spec_version then d.events || excluded.events end,
         complete = d.complete and d.spec_version = excluded.spec_version
   where (d.complete and (d.spec_version <> excluded.spec_version or excluded.events <> '[]'::jsonb)) or (not d.complete and d.events is not null);
  return null;
end $$;

-- An update changes an event's profile (assignment, merge, unmerge) or its content (field
-- encryption): the rows are paired by seq, and nothing is written when neither changed.
create function segment_digest_events_updated() returns trigger language plpgsql as $$
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
   order by 1, 2
  on conflict (workspace_id, profile_id) do update set complete = false, events = null
   where d.complete or d.events is not null;
  return null;
end $$;

create function segment_digest_events_deleted() returns trigger language plpgsql as $$
begin
  perform 1 from removed where profile_id is not null limit 1;
  if not found then return null; end if;
  perform pg_advisory_xact_lock_shared(hashtext('segment-digests:' || w.workspace_id::text))
     from (select distinct workspace_id from removed where profile_id is not null order by 1) w;
  insert into segment_event_digests as d (workspace_id, profile_id, spec_version, complete, events)
  select distinct r.workspace_id, r.profile_id, 0, false, null::jsonb
    from removed r join segment_event_digest_specs s on s.workspace_id = r.workspace_id
   where r.profile_id is not null
   order by 1, 2
  on conflict (workspace_id, profile_id) do update set complete = false, events = null
   where d.complete or d.events is not null;
  return null;
end $$;

create function segment_digest_events_truncated() returns trigger language plpgsql as $$
begin
  delete from segment_event_digests;
  return null;
end $$;

create trigger events_segment_digests_insert after insert on events
  referencing new table as added for each statement execute function segment_digest_events_inserted();
create trigger events_segment_digests_update after update on events
  referencing old table as before_rows new table as after_rows for each statement execute function segment_digest_events_updated();
create trigger events_segment_digests_delete after delete on events
  referencing old table as removed for each statement execute function segment_digest_events_deleted();
create trigger events_segment_digests_truncate after truncate on events
  for each statement execute function segment_digest_events_truncated();
