-- Audit log: who did what, when, from where, with what outcome. Append-only (triggers refuse
-- changes) and tamper-evident: each row's hash covers the previous row's hash and its own fields
-- (privacy/audit.ts computes and verifies them). Route parameters that may be personal data are
-- stored as keyed hashes, so an erased person leaves no readable trace here.
create table audit_log (
  seq bigint primary key,
  at timestamptz not null,
  workspace_id uuid,
  actor_kind text not null,
  actor_id text not null,
  actor_label text not null,
  action text not null,
  method text not null,
  route text not null,
  target jsonb not null default '{}',
  status integer not null,
  outcome text not null check (outcome in ('success', 'denied', 'failure')),
  ip text,
  user_agent text,
  prev_hash bytea not null,
  hash bytea not null
);
create index audit_log_workspace on audit_log (workspace_id, seq desc);

create function audit_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_log is append-only' using errcode = 'insufficient_privilege';
end;
$$;
create trigger audit_log_no_update before update or delete on audit_log for each row execute function audit_log_append_only();
create trigger audit_log_no_truncate before truncate on audit_log for each statement execute function audit_log_append_only();
