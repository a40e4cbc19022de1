-- Channels: provider accounts (secrets encrypted), message templates with versions and locales,
-- delivery policy, suppressions and subscriptions, and the message outbox with its status history.

create table channel_accounts (
  workspace_id uuid not null references workspaces (id),
  key text not null check (key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  kind text not null check (kind in ('email', 'sms', 'wechat', 'wecom', 'push', 'webhook')),
  provider text not null,
  -- Non-secret settings (hosts, sender, app ids, rate limit); secrets live only in secrets_sealed.
  settings jsonb not null default '{}',
  -- AES-256-GCM with the instance secrets key (channels/secrets.ts); never returned by the API.
  secrets_sealed text,
  is_default boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, key)
);
create unique index channel_accounts_default on channel_accounts (workspace_id, kind) where is_default;

create table message_templates (
  workspace_id uuid not null references workspaces (id),
  key text not null check (key ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  channel text not null check (channel in ('email', 'sms', 'wechat', 'wecom', 'push', 'webhook')),
  name text not null,
  latest_version integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, key)
);

-- Immutable once written: a journey version pins a template version.
create table message_template_versions (
  workspace_id uuid not null,
  template_key text not null,
  version integer not null,
  default_locale text not null,
  -- { "<locale>": { "<field>": "<liquid source>" } }
  content jsonb not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, template_key, version),
  foreign key (workspace_id, template_key) references message_templates (workspace_id, key)
);

-- Workspace delivery policy: frequency caps and quiet hours for marketing messages, channels
-- whose marketing sends need an explicit opt-in.
create table channel_policies (
  workspace_id uuid primary key references workspaces (id),
  frequency_caps jsonb not null default '[]',
  quiet_hours jsonb,
  require_opt_in text[] not null default '{}',
  updated_at timestamptz not null default now()
);

create table channel_suppressions (
  workspace_id uuid not null,
  channel text not null,
  address text not null,
  reason text not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, channel, address)
);

create table subscription_groups (
  workspace_id uuid not null references workspaces (id),
  key text not null check (key ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  channel text,
  name text not null,
  -- opt_out: subscribed unless the profile unsubscribed; opt_in: only after subscribing.
  mode text not null default 'opt_out' check (mode in ('opt_in', 'opt_out')),
  created_at timestamptz not null default now(),
  primary key (workspace_id, key)
);

create table profile_subscriptions (
  workspace_id uuid not null,
  profile_id uuid not null,
  group_key text not null,
  subscribed boolean not null,
  source text not null,
  updated_at timestamptz not null default now(),
  primary key (workspace_id, profile_id, group_key)
);

-- The outbox: one row per logical send (idempotency key), from enqueue to its final status.
create table messages (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  idempotency_key text not null,
  profile_id uuid not null,
  channel text not null,
  account_key text,
  template_key text not null,
  template_version integer,
  purpose text not null check (purpose in ('marketing', 'transactional')),
  subscription_group text,
  locale text,
  address text,
  variables jsonb not null default '{}',
  journey_id text,
  journey_version integer,
  instance_id text,
  node_id text,
  status text not null check (status in ('queued', 'held', 'sending', 'sent', 'delivered', 'opened', 'clicked', 'failed', 'skipped', 'cancelled')),
  reason text,
  due_at timestamptz not null,
  attempts integer not null default 0,
  claimed_at timestamptz,
  provider text,
  provider_message_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, idempotency_key)
);
-- The dispatcher's queue: due rows across workspaces, oldest first.
create index messages_due on messages (due_at) where status = 'queued';
-- Sends whose outcome is unknown (claimed, never answered): the reconcile step.
create index messages_sending on messages (claimed_at) where status = 'sending';
create index messages_profile on messages (workspace_id, profile_id, created_at);
create index messages_instance on messages (workspace_id, instance_id) where instance_id is not null;
create index messages_journey on messages (workspace_id, journey_id, status) where journey_id is not null;
create index messages_provider_id on messages (workspace_id, provider, provider_message_id) where provider_message_id is not null;
alter table messages alter column workspace_id set statistics 0;

-- Every status a message went through. Rows with an event name are also the outbox of the
-- `Message …` timeline events (event_written false until the flusher wrote them).
create table message_status_history (
  workspace_id uuid not null,
  id bigint generated always as identity,
  message_id uuid not null,
  status text not null,
  reason text,
  detail jsonb,
  event text,
  event_written boolean not null default true,
  at timestamptz not null,
  primary key (workspace_id, id)
);
create index message_status_history_message on message_status_history (workspace_id, message_id, id);
create index message_status_history_pending on message_status_history (id) where not event_written;

-- Broadcast pacing: the next free send slot of a journey with a rate.
create table message_pacing (
  workspace_id uuid not null,
  journey_id text not null,
  next_slot timestamptz not null,
  primary key (workspace_id, journey_id)
);
