-- pfschat relay store, schema version 10: a group commit writes fewer pages.
--
-- No queue_usage table. Each recipient's queued count and bytes are kept in the
-- relay's memory, counted from the queue when the store opens (storage/relay_usage.go):
-- upserting them cost a group commit two of its six statements and a page written per
-- recipient.
--
-- No AUTOINCREMENT on queue: every insert also rewrote its row in sqlite_sequence (a
-- page a commit). Queue ids are still never reused: the relay reserves them in blocks,
-- the end of the last reservation kept in meta under 'queue_id_ceiling' (written in the
-- transaction that first uses an id past it), and a restarted relay starts after it.
-- The queue's rows move to the new table unchanged; the ceiling starts at the old
-- sequence.
DROP TABLE queue_usage;

CREATE TABLE queue_new (
    id             INTEGER PRIMARY KEY,
    recipient      TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_card_id TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    body           BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
INSERT INTO queue_new (id, recipient, sender, sender_card_id, client_id, body, received_at, expires_at)
    SELECT id, recipient, sender, sender_card_id, client_id, body, received_at, expires_at FROM queue;
INSERT OR REPLACE INTO meta (key, value) VALUES ('queue_id_ceiling',
    max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'queue'), 0),
        coalesce((SELECT max(id) FROM queue), 0)));
DROP TABLE queue;
ALTER TABLE queue_new RENAME TO queue;
CREATE INDEX queue_by_recipient ON queue (recipient, id);
