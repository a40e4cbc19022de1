-- Rate limits shared by every process on the database (privacy/shared-rate-limit.ts): one row per
-- (bucket key, one-second window) counting requests; unlogged (a crash forgets at most a second
-- of counts, which a limiter may), old windows deleted as they pass.
create unlogged table rate_limit_windows (
  bucket text not null,
  window_start bigint not null,
  hits integer not null,
  primary key (bucket, window_start)
);
