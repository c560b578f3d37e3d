-- Version 4: a message waiting for its session (queued offline before the first
-- handshake with its recipient) is marked by a column; its payload is the plain
-- application payload, sealed like every other, until the handshake encrypts it in
-- place. Before, a prefix of the payload said so, and a crash midway left a second item
-- (client id + ".e"); the data step of this version rewrites both (migrate.go).
ALTER TABLE outbox ADD COLUMN awaiting_session INTEGER NOT NULL DEFAULT 0 CHECK (awaiting_session IN (0, 1));
