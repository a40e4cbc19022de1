-- One identity-queue row per ingest request instead of one per event (issue 2): a row and its
-- primary-key entry per event were ~3 of the ingest statement's 18 buffers and ~170 of its
-- ~1,500 WAL bytes per event, and the resolver deleted them one by one again.
--
-- A row holds a request's stored events: their seqs ascending with each event's time beside it
-- (the resolver reads events by (timestamp, seq), the events primary key), and their number.
-- `seq` is the row's smallest seq, so min(seq) over a workspace's rows is still its oldest queued
-- event (journeys intake, columnar sync), and rows ordered by seq give events in seq order up to
-- the next row's seq: the resolver takes rows that way and puts back what lies past that point
-- (identity/queue-take.ts). A request's seqs interleave with concurrent requests', so one row's
-- seqs are not a range.
alter table identity_queue rename to identity_queue_per_event;
alter table identity_queue_per_event rename constraint identity_queue_pkey to identity_queue_per_event_pkey;

create table identity_queue (
  workspace_id uuid not null,
  seq bigint not null,
  events integer not null,
  seqs bigint[] not null,
  timestamps timestamptz[] not null,
  primary key (workspace_id, seq),
  check (events = cardinality(seqs) and events = cardinality(timestamps) and seq = seqs[1])
);
-- As for the other identity tables (0006): no per-workspace statistics.
alter table identity_queue alter column workspace_id set statistics 0;

-- Events queued before the upgrade: one row each, as they were.
insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
select workspace_id, seq, 1, array[seq], array[timestamp] from identity_queue_per_event;

drop table identity_queue_per_event;

-- Takes (deletes and returns) up to `wanted` of a workspace's oldest queued events in seq order:
-- the first events a per-event queue taken `order by seq` gave, at least one when any is queued.
-- Rows are read by seq. Before each row, every queued event below its seq is in a row read
-- already (a row's seq is its smallest), so those events are the queue's seq-ordered prefix; once
-- it holds `wanted`, the reading stops. Concurrent requests' seqs interleave, so rows read may
-- hold seqs past the batch's last: those must wait for the events between (one person's events
-- are resolved in seq order) and are put back as one row.
create function identity_queue_take(ws uuid, wanted integer)
returns table (event_seq bigint, event_time timestamptz)
language plpgsql volatile as $$
declare
  r record;
  keys bigint[] := '{}';      -- the rows read
  read_seqs bigint[] := '{}'; -- their events
  pending bigint[] := '{}';   -- their events not yet known to be in the prefix
  prefix integer := 0;
  cutoff bigint;              -- the first seq not taken
begin
  for r in select q.seq, q.seqs from identity_queue q where q.workspace_id = ws order by q.seq loop
    prefix := prefix + (select count(*) from unnest(pending) as s where s < r.seq);
    if prefix >= wanted then
      cutoff := r.seq;
      exit;
    end if;
    pending := array(select s from unnest(pending) as s where s >= r.seq) || r.seqs;
    read_seqs := read_seqs || r.seqs;
    keys := keys || r.seq;
  end loop;
  cutoff := least(cutoff, (select s from unnest(read_seqs) as s order by s offset wanted limit 1));
  return query
    with taken as (
      delete from identity_queue q
       where q.workspace_id = ws and q.seq = any(keys) and (cutoff is null or q.seq < cutoff)
      returning q.seqs, q.timestamps
    ), events as materialized (
      select u.s, u.t from taken cross join lateral unnest(taken.seqs, taken.timestamps) as u(s, t)
    ), put_back as (
      insert into identity_queue (workspace_id, seq, events, seqs, timestamps)
      select ws, min(e.s), count(*), array_agg(e.s order by e.s), array_agg(e.t order by e.s)
        from events e where e.s >= cutoff
      having count(*) > 0
    )
    select e.s, e.t from events e where cutoff is null or e.s < cutoff order by e.s;
end $$;
