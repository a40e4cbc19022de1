-- Blocked profiles (channels): an operator's "never send to this person" on the profile itself,
-- whatever its addresses. Every send is refused at enqueue (skipped, reason 'blocked') and at
-- dispatch (a message queued before the block is skipped too). Setting and clearing go through
-- the API, so the audit log records who did it; the row keeps the reason and by whom.
create table profile_blocks (
  workspace_id uuid not null references workspaces (id),
  profile_id uuid not null,
  reason text check (length(reason) <= 500),
  blocked_by text not null,
  blocked_at timestamptz not null,
  primary key (workspace_id, profile_id)
);
