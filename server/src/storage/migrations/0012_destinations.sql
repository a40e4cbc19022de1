-- Activation: destinations that receive segment membership changes (signed webhooks), the
-- per-segment delivery state that reads the segment_transitions outbox, and the batches that
-- could not be delivered.

create table destinations (
  workspace_id uuid not null references workspaces (id),
  id uuid not null default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  kind text not null check (kind in ('webhook')),
  url text not null,
  -- The HMAC key of X-Touchpoint-Signature. Kept readable: every delivery signs with it.
  secret text not null,
  status text not null default 'active' check (status in ('active', 'paused')),
  -- batchSize, maxAttempts, timeoutMs, backoffBaseMs, backoffMaxMs, identifiers (activation/destinations.ts).
  settings jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (workspace_id, id),
  unique (workspace_id, name)
);

-- A segment connected to a destination, and how far its changes have been delivered.
create table destination_segments (
  workspace_id uuid not null,
  destination_id uuid not null,
  segment_id uuid not null,
  -- The last segment_transitions.id delivered (or skipped because it predates the connection).
  cursor bigint not null,
  -- sendExisting: members as of the connection are sent as adds, in profile id order, before
  -- any transition after the cursor. backfill_after is the last profile id sent.
  backfill_pending boolean not null default false,
  backfill_after uuid,
  status text not null default 'active' check (status in ('active', 'paused')),
  -- The batch being delivered: frozen when first built so every retry sends the same body and
  -- batch id (json, not jsonb: the text is kept byte for byte). through_* says what delivering
  -- it advances (the cursor, or the backfill position and whether the backfill is complete).
  pending_batch_id uuid,
  pending_payload json,
  pending_through_transition bigint,
  pending_through_profile uuid,
  pending_backfill_done boolean,
  attempts integer not null default 0,
  first_attempt_at timestamptz,
  next_attempt_at timestamptz,
  last_error text,
  last_attempt_at timestamptz,
  last_delivered_at timestamptz,
  delivered_batches bigint not null default 0,
  delivered_changes bigint not null default 0,
  dead_batches bigint not null default 0,
  created_at timestamptz not null default now(),
  primary key (workspace_id, destination_id, segment_id),
  foreign key (workspace_id, destination_id) references destinations (workspace_id, id) on delete cascade,
  foreign key (workspace_id, segment_id) references segments (workspace_id, id) on delete cascade,
  check ((pending_batch_id is null) = (pending_payload is null))
);
create index destination_segments_segment on destination_segments (workspace_id, segment_id);

-- Batches that exhausted their attempts (or were refused with a 4xx): kept whole for redelivery.
create table destination_dead_letters (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  destination_id uuid not null,
  segment_id uuid not null,
  batch_id uuid not null,
  -- The body as it was sent, byte for byte, so a redelivery is the same request.
  payload json not null,
  change_count integer not null,
  attempts integer not null,
  last_error text not null,
  first_attempt_at timestamptz not null,
  last_attempt_at timestamptz not null,
  status text not null default 'dead' check (status in ('dead', 'redelivered', 'discarded')),
  created_at timestamptz not null default now(),
  resolved_at timestamptz,
  primary key (workspace_id, id),
  foreign key (workspace_id, destination_id) references destinations (workspace_id, id) on delete cascade
);
create index destination_dead_letters_list on destination_dead_letters (workspace_id, destination_id, created_at desc, id);

alter table destinations alter column workspace_id set statistics 0;
alter table destination_segments alter column workspace_id set statistics 0;
alter table destination_dead_letters alter column workspace_id set statistics 0;
