-- Segments: definitions, current membership, the history of every transition, and the two queues
-- the real-time evaluator drains (profiles whose data changed; profiles whose windows expire).

-- Touchpoint's own source: the events it writes itself (Segment Entered/Exited, computed trait
-- changes) carry it, so they sit in the timeline like any other event and never pass identity.
alter table sources drop constraint sources_kind_check;
alter table sources add constraint sources_kind_check
  check (kind in ('web', 'app', 'mini_program', 'server', 'store', 'call_centre', 'crm_import', 'warehouse', 'system'));

create table segments (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  -- What `in_segment("...")` and the API call it; any text without quotes or control characters.
  key text not null check (key ~ '^[^"\\[:cntrl:]]{1,64}$'),
  name text not null,
  description text,
  kind text not null check (kind in ('realtime', 'periodic', 'static')),
  -- The AST (segments/ast.ts); null only for a static segment uploaded as a list.
  definition jsonb,
  -- Cron expression of a periodic segment, read in the workspace's time zone.
  schedule text,
  -- A behaviour tag is a segment the profile shows as a tag; template names its library entry.
  is_tag boolean not null default false,
  template text,
  status text not null default 'active' check (status in ('active', 'paused', 'archived')),
  version integer not null default 1,
  -- computing: a full evaluation is due or running; ready: membership reflects the definition.
  state text not null default 'computing' check (state in ('computing', 'ready', 'failed')),
  last_error text,
  computed_at timestamptz,
  next_run_at timestamptz,
  member_count bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, key),
  check ((kind = 'periodic') = (schedule is not null)),
  check (kind = 'static' or definition is not null)
);

create table segment_memberships (
  workspace_id uuid not null,
  segment_id uuid not null,
  profile_id uuid not null,
  entered_at timestamptz not null,
  primary key (workspace_id, segment_id, profile_id)
);
create index segment_memberships_profile on segment_memberships (workspace_id, profile_id);

-- Every entry and exit, exactly once: the outbox that journeys and destinations read by id.
create table segment_transitions (
  workspace_id uuid not null,
  id bigint generated always as identity,
  segment_id uuid not null,
  profile_id uuid not null,
  transition text not null check (transition in ('entered', 'exited')),
  at timestamptz not null,
  -- event: the profile's data changed; expiry: a time window moved on; compute: a full evaluation
  -- (create, edit, schedule); merge: the profile was merged away; list: a static list changed.
  cause text not null check (cause in ('event', 'expiry', 'compute', 'merge', 'list')),
  segment_version integer not null,
  primary key (workspace_id, id)
);
create index segment_transitions_profile on segment_transitions (workspace_id, profile_id, id);
create index segment_transitions_segment on segment_transitions (workspace_id, segment_id, id);

-- Profiles whose events, traits, identifiers or consents changed since they were last evaluated.
-- One row per profile: a burst of events costs one evaluation.
create table segment_queue (
  workspace_id uuid not null,
  profile_id uuid not null,
  queued_at timestamptz not null default now(),
  primary key (workspace_id, profile_id)
);
create index segment_queue_oldest on segment_queue (queued_at);

-- When a profile's answer may change with no new data (an event leaves a window, a negated
-- sequence's wait ends, a birthday comes into range): the earliest such moment over all segments.
create table segment_rechecks (
  workspace_id uuid not null,
  profile_id uuid not null,
  due_at timestamptz not null,
  primary key (workspace_id, profile_id)
);
create index segment_rechecks_due on segment_rechecks (due_at);

-- Consent per category (Segment's context.consent.categoryPreferences), the latest observation wins.
create table profile_consents (
  workspace_id uuid not null,
  profile_id uuid not null,
  category text not null,
  granted boolean not null,
  source_id uuid,
  message_id text,
  observed_at timestamptz not null,
  updated_at timestamptz not null default now(),
  primary key (workspace_id, profile_id, category)
);

alter table segments alter column workspace_id set statistics 0;
alter table segment_memberships alter column workspace_id set statistics 0;
alter table segment_queue alter column workspace_id set statistics 0;
alter table segment_rechecks alter column workspace_id set statistics 0;
alter table profile_consents alter column workspace_id set statistics 0;
