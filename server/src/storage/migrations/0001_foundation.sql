-- Foundation: tenants, sources, keys, raw events, quarantine and the event catalogue.
-- Every tenant-owned table leads its primary key with workspace_id so it can later be
-- distributed by workspace (e.g. Citus) without changing keys.

create table workspaces (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name text not null,
  time_zone text not null default 'UTC',
  status text not null default 'active' check (status in ('active', 'disabled')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table sources (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  name text not null,
  kind text not null check (kind in ('web', 'app', 'mini_program', 'server', 'store', 'call_centre', 'crm_import', 'warehouse')),
  party text not null default 'first' check (party in ('first', 'second', 'third')),
  mode text not null default 'realtime' check (mode in ('realtime', 'batch')),
  status text not null default 'active' check (status in ('active', 'disabled')),
  -- Events per second accepted from this source; null means no per-source limit.
  rate_limit_per_second integer check (rate_limit_per_second > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, name)
);

-- Keys are stored only as SHA-256 hashes; the plaintext is shown once when created.
-- 'write' keys belong to a source and may only send events; 'server' keys are secret
-- and read one workspace's data.
create table api_keys (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  source_id uuid,
  kind text not null check (kind in ('write', 'server')),
  key_hash bytea not null unique,
  key_prefix text not null,
  status text not null default 'active' check (status in ('active', 'disabled')),
  -- Set on a rotated key: it keeps working until then so deployed clients can be updated.
  expires_at timestamptz,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  primary key (workspace_id, id),
  foreign key (workspace_id, source_id) references sources (workspace_id, id),
  check ((kind = 'write') = (source_id is not null))
);

create table instance_settings (
  key text primary key,
  value jsonb not null,
  updated_at timestamptz not null default now()
);

create sequence events_seq;

-- Raw events, one row per accepted message, partitioned by month of the corrected event time.
-- Partitions are created on demand by the writer (storage/partitions.ts).
create table events (
  workspace_id uuid not null,
  timestamp timestamptz not null,
  seq bigint not null default nextval('events_seq'),
  message_id text not null,
  source_id uuid not null,
  type text not null check (type in ('track', 'identify', 'page', 'screen', 'group', 'alias')),
  event text,
  name text,
  category text,
  user_id text,
  anonymous_id text,
  previous_id text,
  group_id text,
  properties jsonb,
  traits jsonb,
  context jsonb,
  integrations jsonb,
  -- Top-level fields outside the Segment spec, kept so nothing the client sent is lost.
  extra jsonb,
  original_timestamp timestamptz,
  sent_at timestamptz,
  received_at timestamptz not null,
  -- Filled by identity resolution.
  profile_id uuid,
  primary key (workspace_id, timestamp, seq)
) partition by range (timestamp);

-- Idempotency: one row per (workspace, messageId) ever accepted, whatever partition the event is in.
create table event_message_ids (
  workspace_id uuid not null,
  message_id text not null,
  timestamp timestamptz not null,
  seq bigint not null,
  received_at timestamptz not null,
  primary key (workspace_id, message_id)
);

-- Items that failed validation: kept with their payload and reason, replayable.
create table quarantine (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  source_id uuid,
  endpoint text not null,
  message_id text,
  reason text not null,
  field text,
  errors jsonb not null,
  -- The item as received, as JSON text: text keeps what jsonb cannot (\u0000, lone surrogates).
  payload text not null,
  received_at timestamptz not null default now(),
  status text not null default 'open' check (status in ('open', 'replayed', 'discarded')),
  resolved_at timestamptz,
  replayed_message_id text,
  primary key (workspace_id, id)
);
create index quarantine_open on quarantine (workspace_id, received_at desc) where status = 'open';

-- Event catalogue: what each workspace actually sends. Designed to grow into a tracking plan
-- (a later migration adds expected schemas and enforcement status per event).
create table event_catalogue (
  workspace_id uuid not null,
  event_type text not null,
  event_name text not null,
  first_seen timestamptz not null,
  last_seen timestamptz not null,
  volume bigint not null,
  primary key (workspace_id, event_type, event_name)
);

create table event_catalogue_properties (
  workspace_id uuid not null,
  event_type text not null,
  event_name text not null,
  -- 'properties', 'traits' or 'context'
  scope text not null,
  -- Dot path into the object, e.g. 'products.price' (array items use the path of the array).
  path text not null,
  type_counts jsonb not null,
  first_seen timestamptz not null,
  last_seen timestamptz not null,
  volume bigint not null,
  primary key (workspace_id, event_type, event_name, scope, path)
);
