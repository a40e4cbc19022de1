-- Probabilistic matching of profiles that share no identifier: pairs the matcher proposed and
-- what became of them. A pair is proposed once; a rejected pair is never proposed again.
create table match_candidates (
  workspace_id uuid not null,
  id uuid not null default gen_random_uuid(),
  profile_a uuid not null,
  profile_b uuid not null,
  probability double precision not null,
  weight double precision not null,
  -- Agreement level per compared field, for the reviewer.
  levels jsonb not null,
  status text not null check (status in ('pending', 'approved', 'rejected', 'auto_merged', 'refused')),
  reason text,
  merge_id uuid,
  created_at timestamptz not null default now(),
  decided_at timestamptz,
  primary key (workspace_id, id),
  unique (workspace_id, profile_a, profile_b),
  check (profile_a < profile_b)
);
create index match_candidates_pending on match_candidates (workspace_id, probability desc) where status = 'pending';
