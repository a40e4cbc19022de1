-- Room on every page for the row versions identity resolution writes in place. Resolution
-- rewrites a known identifier's last_seen, a profile's first/last seen and a changed trait's value
-- and provenance; none of these columns is indexed, so PostgreSQL can keep the new version on the
-- same page as a heap-only tuple (no entry in any of the table's indexes: four on
-- profile_identifiers) — but only if the page has free space, and at the default fillfactor (100)
-- bulk-inserted pages have none. Applies to pages written from now on; existing pages fill as
-- before until they are rewritten.
alter table profile_identifiers set (fillfactor = 70);
alter table profiles set (fillfactor = 80);
alter table profile_traits set (fillfactor = 70);
