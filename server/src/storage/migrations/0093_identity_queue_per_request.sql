-- One identity-queue row per ingest request instead of one per event (issue 2): a row and its
-- primary-key entry per event were ~3 of the ingest statement's 18 buffers and ~170 of its
-- ~1,500 WAL bytes per event, and the resolver deleted them one by one again.
--
-- A row holds a request's stored events: their seqs ascending with each event's time beside it
-- (the resolver reads events by (timestamp, seq), the events primary key), and their number.
-- `seq` is the row's smallest seq, so min(seq) over a workspace's rows is still its oldest queued
-- event (journeys intake, columnar sync), and rows ordered by seq give events in seq order up to
-- the next row's seq: the resolver takes rows that way and puts back what lies past its batch
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

