-- Computed traits: per-profile values derived from events by a definition (segments/computed/),
-- kept up to date by the real-time worker. Their values are ordinary rows of profile_traits with
-- source_kind 'computed' and source_name = the trait's key, so the profile shows them and
-- segments read them as `trait.<key>` like any other trait.

create table computed_traits (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  -- The key written into profile_traits: a segment path's first part, so no dots; no quotes or
  -- control characters so the text form can print it.
  key text not null check (key ~ '^[^."\\[:cntrl:]]{1,200}$'),
  name text not null,
  description text,
  -- segments/computed/definition.ts
  definition jsonb not null,
  status text not null default 'active' check (status in ('active', 'paused', 'archived')),
  version integer not null default 1,
  -- computing: a full computation is due or running; ready: every live profile's value reflects
  -- this version of the definition; failed: the last full computation failed (last_error).
  state text not null default 'computing' check (state in ('computing', 'ready', 'failed')),
  computed_at timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, key)
);
alter table computed_traits alter column workspace_id set statistics 0;

-- A computed value's change is recorded like any other trait change.
alter table profile_trait_history drop constraint profile_trait_history_reason_check;
alter table profile_trait_history add constraint profile_trait_history_reason_check
  check (reason in ('event', 'merge', 'unmerge', 'computed'));
