-- Identity resolution: profiles, the identifier graph, merges (explainable, reversible) and traits
-- with provenance. All keyed by workspace first, like every tenant table.

-- Per-workspace identity settings (identifier types, limits, blocked values, trait strategies);
-- absent means the defaults of identity/identifier-types.ts and identity/traits.ts.
create table identity_settings (
  workspace_id uuid primary key references workspaces (id),
  settings jsonb not null,
  updated_at timestamptz not null default now()
);

create table profiles (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  first_seen timestamptz,
  last_seen timestamptz,
  -- Set when a merge absorbed this profile: its id keeps resolving to the survivor (one hop:
  -- later merges re-point earlier absorbed ids).
  merged_into uuid,
  merged_at timestamptz,
  primary key (workspace_id, id)
);
create index profiles_merged_into on profiles (workspace_id, merged_into) where merged_into is not null;

-- Links of identifiers to profiles. A link is live until unbound; history rows stay.
create table profile_identifiers (
  workspace_id uuid not null,
  id bigint generated always as identity,
  profile_id uuid not null,
  type text not null,
  value text not null,
  source_id uuid,
  first_seen timestamptz not null,
  last_seen timestamptz not null,
  -- The event that linked it (its messageId and seq) and how: event, alias, import, match, manual.
  linked_by_message_id text,
  linked_by_seq bigint,
  linked_via text not null default 'event',
  bound_at timestamptz not null default now(),
  unbound_at timestamptz,
  unbound_reason text,
  primary key (workspace_id, id)
);
-- The invariant: no identifier belongs to two live profiles.
create unique index profile_identifiers_live on profile_identifiers (workspace_id, type, value) where unbound_at is null;
create index profile_identifiers_profile on profile_identifiers (workspace_id, profile_id);
create index profile_identifiers_value_prefix on profile_identifiers (workspace_id, value text_pattern_ops);

-- One row per merge (and per unmerge): what survived, what was absorbed, and why.
create table identity_merges (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  kind text not null check (kind in ('event', 'alias', 'match', 'manual', 'unmerge')),
  survivor_id uuid not null,
  absorbed_ids uuid[] not null,
  -- For each absorbed profile: the identifiers it had, so the merge can be explained and undone.
  details jsonb not null default '{}',
  cause_message_id text,
  cause_seq bigint,
  cause_identifier_type text,
  cause_identifier_value text,
  score double precision,
  created_at timestamptz not null default now(),
  undone_at timestamptz,
  undone_by uuid,
  primary key (workspace_id, id)
);
create index identity_merges_survivor on identity_merges (workspace_id, survivor_id);
create index identity_merges_absorbed on identity_merges using gin (absorbed_ids);

-- Merges the resolver refused (limits, conflicting values, earlier unmerges) and identifiers it ignored.
create table identity_refusals (
  workspace_id uuid not null,
  id bigint generated always as identity,
  profile_id uuid,
  message_id text,
  seq bigint,
  identifier_type text not null,
  identifier_value text not null,
  reason text not null,
  message text not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, id)
);
create table identity_ignored_counts (
  workspace_id uuid not null,
  identifier_type text not null,
  reason text not null,
  count bigint not null,
  last_seen timestamptz not null,
  primary key (workspace_id, identifier_type, reason)
);

-- Pairs of profiles an operator split apart: automatic linking never joins them again.
create table identity_splits (
  workspace_id uuid not null,
  profile_a uuid not null,
  profile_b uuid not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, profile_a, profile_b),
  check (profile_a < profile_b)
);

-- Current traits with provenance, and the history of every value change.
create table profile_traits (
  workspace_id uuid not null,
  profile_id uuid not null,
  key text not null,
  value jsonb not null,
  source_kind text not null,
  source_name text not null,
  message_id text not null,
  observed_at timestamptz not null,
  updated_at timestamptz not null default now(),
  primary key (workspace_id, profile_id, key)
);
create table profile_trait_history (
  workspace_id uuid not null,
  id bigint generated always as identity,
  profile_id uuid not null,
  key text not null,
  previous_value jsonb,
  value jsonb not null,
  source_kind text not null,
  source_name text not null,
  message_id text not null,
  observed_at timestamptz not null,
  reason text not null check (reason in ('event', 'merge', 'unmerge')),
  recorded_at timestamptz not null default now(),
  primary key (workspace_id, id)
);
create index profile_trait_history_profile on profile_trait_history (workspace_id, profile_id, key, id);

-- Stored events waiting for identity resolution, in arrival order (seq). Filled in the ingest
-- transaction, drained by the worker.
create table identity_queue (
  workspace_id uuid not null,
  seq bigint not null,
  timestamp timestamptz not null,
  primary key (workspace_id, seq)
);

-- The timeline of a profile: its events newest first.
create index events_profile_timeline on events (workspace_id, profile_id, timestamp desc) where profile_id is not null;
