-- event_message_ids is the idempotency claim of a (workspace, messageId): only its key is ever read
-- (the ingest statement's `on conflict do nothing`, and the deletes of retention and erasure by
-- message_id). Its timestamp, seq and received_at were written for every stored event and read by
-- nothing (issue 2): ~24 bytes of heap and WAL per event. Dropping them is a catalogue change
-- (no rewrite): rows written before keep their bytes until vacuum reuses the space, new rows
-- carry only the key.
alter table event_message_ids drop column timestamp, drop column seq, drop column received_at;
