-- Segments a workspace lets the visitor's own browser or mini-program read back (the
-- personalisation helpers' GET /v1/visitor/segments). Off by default: collection write keys are
-- public, so anyone who knows a visitor's id could ask; only segments whose key is harmless to
-- reveal to that visitor (e.g. "new-visitor", "cart-abandoner") should be turned on.
alter table segments add column client_visible boolean not null default false;
