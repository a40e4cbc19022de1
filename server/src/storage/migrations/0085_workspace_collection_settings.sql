-- Collection settings of a workspace: whether events need the visitor's consent before they are
-- stored, and which consent categories (Segment's context.consent.categoryPreferences) must be
-- granted. An empty list with require_consent means "at least one category granted".
alter table workspaces
  add column require_consent boolean not null default false,
  add column consent_categories text[] not null default '{}'
    check (cardinality(consent_categories) <= 20);
