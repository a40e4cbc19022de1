-- Every tenant table is keyed by workspace first (docs/architecture.md, "Tenancy"); 0043 keyed the
-- deletion log by its id alone. The id index serves the columnar sync's reads and trims in id order.
alter table analytics_event_deletions drop constraint analytics_event_deletions_pkey;
alter table analytics_event_deletions add primary key (workspace_id, id);
create index analytics_event_deletions_id on analytics_event_deletions (id);
