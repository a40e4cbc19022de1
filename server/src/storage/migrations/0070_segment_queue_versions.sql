-- The real-time drain no longer deletes the profiles it takes at the start of its transaction: an
-- identity batch queueing one of them again had to wait for the whole evaluation to commit (10 %
-- of the database's time at 2,000 events/s in the segment benchmark). Queueing a profile that is
-- already queued now counts a new version; the drain deletes, at the end, only rows still at the
-- version it read and not being re-queued right then (skip locked), so a change committed during
-- an evaluation keeps its profile queued, and neither side waits for the other.
alter table segment_queue add column version integer not null default 0;
