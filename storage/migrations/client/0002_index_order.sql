-- Version 2: indexes that also cover the ORDER BY of their queries (no temp sort).
DROP INDEX messages_by_client_id;
CREATE INDEX messages_by_client_id ON messages (client_id, direction DESC, id) WHERE client_id <> '';
DROP INDEX sessions_by_peer;
CREATE INDEX sessions_by_peer ON sessions (peer_card_id, active DESC, updated_at DESC, id);
