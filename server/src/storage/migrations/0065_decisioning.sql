-- Touchpoint decisioning (issue 10, items 6 and 7): placements with candidate contents and a
-- policy, the decisions served and their reported outcomes, the bandit's per-content counts,
-- sticky assignments, and the item catalogue and trained models behind recommendation contents.

create table decision_placements (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  key text not null check (key ~ '^[A-Za-z0-9_.-]{1,64}$'),
  name text not null,
  policy text not null check (policy in ('rules', 'ab', 'bandit')),
  goal text not null check (goal in ('click', 'conversion')),
  min_exploration double precision not null check (min_exploration between 0 and 1),
  holdout_percent double precision not null check (holdout_percent between 0 and 50),
  sticky_hours double precision not null check (sticky_hours >= 0),
  status text not null check (status in ('active', 'paused', 'archived')),
  -- The candidate contents as given (schemas.ts ContentInput) plus each eligibility rule's AST.
  contents jsonb not null,
  version integer not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, key)
);

-- Reported results per content, holdout excluded: the bandit's Beta posteriors read these.
create table decision_arm_stats (
  workspace_id uuid not null,
  placement_id uuid not null,
  content_key text not null,
  impressions bigint not null default 0,
  clicks bigint not null default 0,
  conversions bigint not null default 0,
  primary key (workspace_id, placement_id, content_key)
);

-- One row per decision served; outcomes are stamped once each (reports are idempotent).
create table decisions (
  workspace_id uuid not null,
  id uuid not null,
  placement_id uuid not null,
  placement_version integer not null,
  -- The profile, or null for a visitor not (yet) known; subject is what sticky and holdout hash:
  -- the profile id, or 'anonymous:<id>'.
  profile_id uuid,
  subject text not null,
  content_key text,
  policy text not null,
  variant text,
  holdout boolean not null,
  propensity double precision not null,
  reason text not null,
  items jsonb,
  decided_at timestamptz not null,
  impression_at timestamptz,
  clicked_at timestamptz,
  converted_at timestamptz,
  primary key (workspace_id, id)
);
create index decisions_subject on decisions (workspace_id, placement_id, subject, decided_at);

-- The bandit's sticky assignments: a subject keeps its content for the placement's sticky hours.
create table decision_assignments (
  workspace_id uuid not null,
  placement_id uuid not null,
  subject text not null,
  content_key text not null,
  propensity double precision not null,
  assigned_at timestamptz not null,
  primary key (workspace_id, placement_id, subject)
);

-- The item catalogue recommendation contents draw from (imported as CSV/NDJSON/JSON).
create table decision_items (
  workspace_id uuid not null references workspaces (id),
  item_id text not null check (length(item_id) between 1 and 200),
  name text,
  category text,
  attributes jsonb not null default '{}',
  in_stock boolean not null default true,
  updated_at timestamptz not null default now(),
  primary key (workspace_id, item_id)
);

-- Per profile, what it did with each item in the training window (rebuilt by each training).
create table decision_profile_items (
  workspace_id uuid not null,
  profile_id uuid not null,
  item_id text not null,
  weight double precision not null,
  bought boolean not null,
  last_at timestamptz not null,
  primary key (workspace_id, profile_id, item_id)
);

-- The latest trained model per workspace: item neighbours and decayed popularity.
create table decision_models (
  workspace_id uuid not null primary key,
  trained_at timestamptz not null,
  version bigint not null,
  interactions integer not null,
  profiles integer not null,
  items integer not null,
  duration_ms integer not null,
  neighbours jsonb not null,
  popular jsonb not null
);
