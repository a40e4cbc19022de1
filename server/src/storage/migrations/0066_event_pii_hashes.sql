-- Keyed hashes of the sealed PII fields of each event (privacy/pii-hashes.ts), written at ingest
-- beside the sealed values: {"properties.email": "tph1.…", "context.traits.phone": "tph1.…"}.
-- A sealed value differs per event (random IV); its hash is equal for equal (normalised) values,
-- so analytics group and compare personal data by it without opening any event. Null: no PII
-- field, or stored before this column (pii-backfill fills those).
alter table events add column pii_hashes jsonb;
