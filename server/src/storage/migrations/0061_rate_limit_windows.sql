-- Requests counted per rate-limit bucket (`ip:api:203.0.113.5`, `caller:key:…`) and one-second
-- window, shared by every API process so N processes together allow the limit, not N times it
-- (api/shared-rate-limit.ts). Processes reserve tokens in small blocks: `count` is what has been
-- handed out in the window, `last_grant` what the latest reservation received (the upsert returns
-- it, since RETURNING cannot see the row's previous count).
-- Unlogged: no WAL for a write that happens on every block of requests; a crash empties the table,
-- which only resets the current second's limits. Windows older than a minute are deleted.
create unlogged table rate_limit_windows (
  bucket text not null,
  window_start bigint not null,
  count integer not null check (count >= 0),
  last_grant integer not null check (last_grant >= 0),
  primary key (bucket, window_start)
) with (fillfactor = 50);
