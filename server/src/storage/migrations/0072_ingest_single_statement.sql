-- Collection stores a request's events in one autocommit statement (ingest/store.ts): message ids,
-- identity queue, events and the catalogue's observations together. The observations are computed
-- before the statement for every event sent, so they are right only if none was already stored;
-- this check stops the statement (and so rolls all of it back) when some were, and the writer then
-- stores that batch through its transactional path, which observes exactly the events it stored.
create function ingest_expect_all_fresh(fresh bigint, sent integer) returns boolean
language plpgsql volatile as $$
begin
  if fresh <> sent then
    raise exception 'ingest: % of % events were already stored', sent - fresh, sent using errcode = 'TP001';
  end if;
  return true;
end $$;
