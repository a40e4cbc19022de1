-- Token buckets shared by every API process (api/shared-rate-limit.ts `createSharedTokenBuckets`):
-- a source's events per second at collection, where one request may carry a 2,500-event batch, so
-- a one-second window (rate_limit_windows) cannot express "a batch bigger than the rate passes when
-- the bucket is full". Kept as the bucket's theoretical arrival time (GCRA): one upsert per request
-- decides and spends atomically. Unlogged: a crash only refills the buckets.
-- Keyed by workspace first, as every tenant table (the source's workspace is known here).
create unlogged table rate_limit_buckets (
  workspace_id uuid not null references workspaces (id) on delete cascade,
  bucket text not null,
  -- When the bucket would be full again, in ms since the epoch on the callers' clocks.
  full_at_ms double precision not null,
  primary key (workspace_id, bucket)
) with (fillfactor = 50);
