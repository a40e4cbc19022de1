-- Identity resolution looks rows up by workspace plus a key (an identifier, a profile id, a queue
-- seq), always through indexes that start with workspace_id. With per-value statistics on
-- workspace_id, a workspace the last ANALYZE did not see (a new tenant, a first import into a
-- database holding others) is estimated at one row, every index starting with workspace_id looks
-- equally cheap, and the planner may pick one that reads all of the workspace's rows per lookup:
-- resolution of a new workspace's first 20,000 events took 78 s instead of 3 s. Without them every
-- workspace gets the same default selectivity and the index matching the whole key wins.
alter table profile_identifiers alter column workspace_id set statistics 0;
alter table profiles alter column workspace_id set statistics 0;
alter table profile_traits alter column workspace_id set statistics 0;
alter table profile_trait_history alter column workspace_id set statistics 0;
alter table identity_queue alter column workspace_id set statistics 0;
