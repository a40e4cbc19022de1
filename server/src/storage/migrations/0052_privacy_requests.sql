-- Data-subject rights: requests (access export, erasure) with deadlines, the suppression list of
-- erased people's identifiers (keyed hashes only: the list must not itself hold their data), and
-- per-workspace privacy settings (retention).

create table privacy_settings (
  workspace_id uuid primary key references workspaces (id),
  -- Raw events older than this are deleted (whole partitions dropped when every workspace agrees).
  event_retention_days integer check (event_retention_days > 0),
  -- Profiles not seen for this long are erased like a data-subject request.
  profile_inactivity_days integer check (profile_inactivity_days > 0),
  -- Days a data-subject request may take (GDPR: one month; PIPL: 15 working days).
  request_deadline_days integer not null default 30 check (request_deadline_days between 1 and 90),
  updated_at timestamptz not null default now()
);

create table privacy_requests (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  kind text not null check (kind in ('access', 'erasure')),
  status text not null default 'received' check (status in ('received', 'completed', 'failed')),
  -- The subject as the requester named it, hashed: type in clear, value as a keyed hash.
  subject_type text not null,
  subject_hash bytea not null,
  requested_by text not null,
  reason text,
  received_at timestamptz not null default now(),
  due_at timestamptz not null,
  completed_at timestamptz,
  -- Rows deleted or exported per step; never the data itself.
  result jsonb,
  error text,
  primary key (workspace_id, id)
);
create index privacy_requests_open on privacy_requests (workspace_id, due_at) where status = 'received';

create table privacy_suppressions (
  workspace_id uuid not null references workspaces (id),
  identifier_hash bytea not null,
  identifier_type text not null,
  request_id uuid,
  created_at timestamptz not null default now(),
  dropped_events bigint not null default 0,
  last_dropped_at timestamptz,
  primary key (workspace_id, identifier_hash)
);
