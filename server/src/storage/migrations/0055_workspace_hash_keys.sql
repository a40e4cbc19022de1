-- Keys of the keyed-hash PII tokens (`tph1.`, privacy/pii-codec.ts): one per workspace, stored only
-- sealed by the instance master key like the data keys (privacy/data-keys.ts), so rotating the
-- master key re-seals them and rotating the instance privacy key no longer changes any token.
-- Workspaces that exist now made their tokens with a key derived from the privacy key: they get a
-- pending row (origin 'derived', not yet sealed; migrations hold no key). The first process that
-- holds the keys seals exactly that derived key, so existing tokens keep matching and nothing is
-- rewritten. Workspaces created later get a random key (origin 'random') at first use.
create table workspace_hash_keys (
  workspace_id uuid primary key references workspaces (id) on delete cascade,
  origin text not null check (origin in ('derived', 'random')),
  sealed bytea,
  master_key_id text,
  created_at timestamptz not null default now(),
  resealed_at timestamptz,
  check ((sealed is null) = (master_key_id is null)),
  check (sealed is not null or origin = 'derived')
);

insert into workspace_hash_keys (workspace_id, origin) select id, 'derived' from workspaces;
