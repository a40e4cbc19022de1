-- Channels: limits that hold across every worker process.
--
-- Token buckets of the dispatcher, one row per limited scope: `account:<key>` (an account's
-- settings.ratePerSecond) and `journey:<id>` (a broadcast's send rate). A claim locks the rows it
-- needs, refills them for the time passed and takes one token per message, in its transaction.
create table channel_rate_buckets (
  workspace_id uuid not null,
  scope text not null,
  rate double precision not null check (rate > 0),
  tokens double precision not null,
  refilled_at timestamptz not null,
  primary key (workspace_id, scope)
);

-- The send rate a message's journey asked for (messages/s), enforced at dispatch.
alter table messages add column rate_per_second double precision;

-- Frequency caps: every marketing enqueue locks its profile's row until its transaction commits,
-- so two transactions never both count the same last free slot.
create table channel_profile_locks (
  workspace_id uuid not null,
  profile_id uuid not null,
  primary key (workspace_id, profile_id)
);
