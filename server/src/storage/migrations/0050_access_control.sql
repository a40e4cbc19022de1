-- Access control: permissions on API keys, dashboard users, per-workspace roles and memberships,
-- and login sessions. Permissions are '<area>.<action>' strings; patterns may use '*'
-- ('segments.*', '*.read', '*'). See server/src/privacy/permissions.ts.

-- Null keeps a key's historic rights (write keys: collection; server keys: the workspace API).
alter table api_keys add column permissions text[];
alter table api_keys add column name text;

create table users (
  id uuid primary key default gen_random_uuid(),
  email text not null unique check (email = lower(email)),
  name text not null default '',
  -- scrypt$N$r$p$salt$hash (base64url); see privacy/passwords.ts.
  password_hash text not null,
  status text not null default 'active' check (status in ('active', 'disabled')),
  -- An instance-wide administrator: every permission in every workspace, like the admin token.
  is_superuser boolean not null default false,
  failed_logins integer not null default 0,
  locked_until timestamptz,
  last_login_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Custom roles; built-in roles (owner, admin, marketer, analyst, viewer) live in code.
create table workspace_roles (
  workspace_id uuid not null references workspaces (id),
  key text not null check (key ~ '^[a-z][a-z0-9_-]{0,62}$'),
  name text not null,
  permissions text[] not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, key)
);

create table workspace_members (
  workspace_id uuid not null references workspaces (id),
  user_id uuid not null references users (id) on delete cascade,
  role text not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, user_id)
);
create index workspace_members_user on workspace_members (user_id);

-- Sessions are stored as SHA-256 hashes of the cookie value, with the CSRF token's hash.
create table user_sessions (
  token_hash bytea primary key,
  user_id uuid not null references users (id) on delete cascade,
  csrf_hash bytea not null,
  ip text,
  user_agent text,
  created_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index user_sessions_user on user_sessions (user_id);
