-- Journeys read events in seq order only once they have a profile (journeys/intake.ts: `profile_id
-- is not null`, below the identity queue). Indexing only those rows takes an index entry off every
-- event's insert: ingest now writes profile_id at insert when the person is known (the row enters
-- the index then), otherwise identity resolution's update adds it, once, instead of the insert and
-- the update each adding one.
drop index events_journey_seq;
create index events_journey_seq on events (workspace_id, seq) where profile_id is not null;
