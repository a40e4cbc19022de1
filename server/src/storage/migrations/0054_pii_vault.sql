-- Field-level encryption of personal data (privacy/pii-codec.ts). Identifier values of PII types
-- (email, phone, id_number, name, address) and values of PII trait keys are stored as keyed-hash
-- tokens `tph1.<HMAC>` (equal values give equal tokens, so the live unique index, lookups and
-- segment equality keep working); the one sealed copy of each distinct value lives here, opened
-- only where a value is shown or sent. PII fields inside stored events are sealed in place
-- (`tpe1.` tokens). Needs no key: existing plaintext rows are encrypted by
-- `touchpoint privacy encrypt-existing` / the worker's backfill, which hold the keys.
create table pii_vault (
  workspace_id uuid not null,
  token text not null,
  -- AES-256-GCM by the workspace data key (key number inside the token), bound to workspace and token.
  sealed text not null,
  key_number integer not null,
  created_at timestamptz not null default now(),
  primary key (workspace_id, token)
);
-- Re-encryption after a data-key rotation finds values sealed by retired keys.
create index pii_vault_key_number on pii_vault (workspace_id, key_number);
