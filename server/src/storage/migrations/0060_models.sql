-- Customer insight models (models/): RFM, lifecycle, CLV, churn and purchase propensity,
-- lookalike audiences. A model is a definition (kind + config) trained on a schedule; each
-- training is a model_runs row with its status, the parameters it fitted, its metrics and
-- diagnostics (calibration/holdout series, top features). Scores are profile_traits rows with
-- source_kind 'computed' and source_name 'model:<model key>', so segments read them as
-- trait.<key>, events never overwrite them and merges recompute rather than carry them.

create table models (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  -- The trait keys the model writes start with it (rfm → rfm_group), so a segment path part.
  key text not null check (key ~ '^[a-z][a-z0-9_]{0,47}$'),
  kind text not null check (kind in ('rfm', 'lifecycle', 'clv', 'churn', 'purchase', 'lookalike')),
  name text not null,
  description text,
  -- models/schemas.ts ModelConfigSchema, defaults applied.
  config jsonb not null,
  status text not null default 'active' check (status in ('active', 'paused', 'archived')),
  schedule_hours integer not null default 24 check (schedule_hours between 1 and 8760),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, key)
);
alter table models alter column workspace_id set statistics 0;

create table model_runs (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  model_id uuid not null,
  status text not null default 'queued' check (status in ('queued', 'running', 'succeeded', 'failed')),
  trigger text not null check (trigger in ('schedule', 'api')),
  -- The model's config when the run started: what these parameters were fitted under.
  config jsonb not null,
  parameters jsonb,
  metrics jsonb,
  diagnostics jsonb,
  profiles_scored integer,
  profiles_changed integer,
  error text,
  queued_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  primary key (workspace_id, id),
  foreign key (workspace_id, model_id) references models (workspace_id, id)
);
alter table model_runs alter column workspace_id set statistics 0;
create index model_runs_by_model on model_runs (workspace_id, model_id, queued_at desc);
