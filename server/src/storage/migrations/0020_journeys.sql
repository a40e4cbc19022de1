-- Journeys: definitions and their frozen versions, one instance per (journey, profile) walk, the
-- step history of every instance, and the cursors the entry loops read their outboxes with.

create table journeys (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  key text not null check (length(key) between 1 and 64),
  name text not null check (length(name) between 1 and 200),
  description text,
  -- draft: never published; published: live; paused: instances hold, nothing enters or is sent;
  -- archived: stopped for good (every instance exited).
  status text not null default 'draft' check (status in ('draft', 'published', 'paused', 'archived')),
  -- The editable definition (journeys/definition.ts); publishing freezes a copy as a version.
  draft jsonb not null,
  current_version integer,
  -- Entries over all versions, for the entry cap.
  entered_count bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, key)
);

create table journey_versions (
  workspace_id uuid not null,
  journey_id uuid not null,
  version integer not null,
  definition jsonb not null,
  published_at timestamptz not null,
  primary key (workspace_id, journey_id, version),
  foreign key (workspace_id, journey_id) references journeys (workspace_id, id)
);

create table journey_instances (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  journey_id uuid not null,
  version integer not null,
  profile_id uuid not null,
  status text not null check (status in ('active', 'completed', 'converted', 'exited')),
  -- Where the instance is. arrive: the node has yet to run; wait: it runs a delay or a wait and
  -- its due_at is the delay's end or the wait's timeout.
  node_id text not null,
  phase text not null check (phase in ('arrive', 'wait')),
  -- When the executor takes the instance next (active only).
  due_at timestamptz,
  holdout boolean not null default false,
  entry text not null check (entry in ('event', 'segment', 'api')),
  entered_at timestamptz not null,
  wait_started_at timestamptz,
  -- node id → times the instance arrived there; part of each send's idempotency key.
  visits jsonb not null default '{}',
  step_count integer not null default 0,
  -- Trigger event properties and the like, for templates.
  variables jsonb not null default '{}',
  ended_at timestamptz,
  -- completed, converted, exited, stopped, removed (docs/events.md), and what caused it.
  end_reason text,
  end_detail text,
  primary key (workspace_id, id)
);
-- Timers: the executor reads due instances in due order, whatever the workspace. Waiting
-- instances cost an index entry and nothing else.
create index journey_instances_due on journey_instances (due_at) where status = 'active';
-- A profile is in a journey at most once at a time.
create unique index journey_instances_live on journey_instances (workspace_id, journey_id, profile_id) where status = 'active';
create index journey_instances_profile on journey_instances (workspace_id, profile_id) where status = 'active';
create index journey_instances_journey on journey_instances (workspace_id, journey_id, profile_id, entered_at desc);
create index journey_instances_listing on journey_instances (workspace_id, journey_id, entered_at desc, id);

-- Every node an instance arrived at, in order: the path taken.
create table journey_steps (
  workspace_id uuid not null,
  instance_id uuid not null,
  step integer not null,
  journey_id uuid not null,
  version integer not null,
  node_id text not null,
  kind text not null,
  at timestamptz not null,
  -- What happened there: next, waiting, timed_out, event, yes/no, the branch key, queued/skipped/
  -- duplicate/held_out (sends), completed/converted/exited.
  outcome text not null,
  detail jsonb,
  primary key (workspace_id, instance_id, step)
);
create index journey_steps_node on journey_steps (workspace_id, journey_id, node_id);

-- How far each workspace's entry loops have read: events (by seq) and segment_transitions (by id).
create table journey_cursors (
  workspace_id uuid not null,
  source text not null check (source in ('events', 'transitions')),
  position bigint not null,
  primary key (workspace_id, source)
);

-- Event waits, goals, exits and event triggers read events in arrival order (seq).
create index events_journey_seq on events (workspace_id, seq);
