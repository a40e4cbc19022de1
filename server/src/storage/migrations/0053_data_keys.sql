-- Envelope encryption (privacy/data-keys.ts): each workspace's data keys, stored only sealed by
-- the instance master key (TOUCHPOINT_MASTER_KEY / _FILE). The newest active key seals new
-- values; older ones stay to open what they sealed. master_key_id names the master key that
-- sealed the row (a rotation re-seals every row under the new one).
create table workspace_data_keys (
  workspace_id uuid not null references workspaces (id) on delete cascade,
  number integer not null,
  sealed bytea not null,
  master_key_id text not null,
  created_at timestamptz not null default now(),
  resealed_at timestamptz,
  primary key (workspace_id, number)
);

-- Quarantined payloads are sealed by the workspace data key; erasure finds a person's items by
-- keyed hashes of the payload's string values instead of reading the text.
alter table quarantine add column subject_hashes bytea[];
create index quarantine_subject_hashes on quarantine using gin (subject_hashes);
