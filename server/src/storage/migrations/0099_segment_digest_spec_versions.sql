-- Digest spec versions from one sequence instead of version + 1 per workspace: a workspace whose
-- digests were switched off loses its spec row (segments/digests.ts, dropWorkspaceDigests) and its
-- digest and append rows are deleted afterwards, in chunks, outside any lock. A spec made again
-- later must never take a version such a leftover row still carries, or the row would read as
-- current.
create sequence segment_event_digest_spec_versions;
select setval('segment_event_digest_spec_versions', greatest(coalesce((select max(version) from segment_event_digest_specs), 0), 1));
