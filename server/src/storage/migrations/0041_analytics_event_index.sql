-- Analytics: a covering index over resolved events by (workspace, event name, time), carrying the
-- few columns funnels, retention and lifecycle read (profile, seq, type, source). A funnel over
-- named track events reads only these index entries (an index-only scan of the needed names in the
-- range) instead of the wide event rows with their JSON. It is the compact analytics projection of
-- the events, kept current by PostgreSQL itself: ingest inserts, identity resolution and merges
-- (which set or move profile_id), unmerges, erasure and retention (deletes, dropped partitions)
-- all maintain it with the table, so it can never disagree with `events`.
create index events_analytics on events (workspace_id, event, timestamp) include (profile_id, seq, type, source_id) where profile_id is not null;
