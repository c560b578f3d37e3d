-- pfschat relay store, schema version 1. Times are INTEGER Unix nanoseconds.
-- The relay holds no plaintext: bodies are end-to-end ciphertext, cards and prekeys public.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE accounts (
    name       TEXT PRIMARY KEY,
    card_id    TEXT NOT NULL UNIQUE,
    card       BLOB NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE prekeys (
    card_id TEXT NOT NULL,
    kind    INTEGER NOT NULL,
    id      INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (card_id, kind, id)
) WITHOUT ROWID;

CREATE TABLE queue (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient      TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_card_id TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    body           BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX queue_by_recipient ON queue (recipient, id);
CREATE INDEX queue_by_expiry ON queue (expires_at);

-- (sender, client_id) of every message accepted and not yet expired, kept after the
-- ack deletes the queue row so a resend of a delivered message is still recognised.
CREATE TABLE dedup (
    sender     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (sender, client_id)
) WITHOUT ROWID;
CREATE INDEX dedup_by_expiry ON dedup (expires_at);

-- Per-recipient queue usage, kept exact by triggers, so limits cost O(1) per message.
CREATE TABLE queue_usage (
    recipient TEXT PRIMARY KEY,
    count     INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER queue_usage_insert AFTER INSERT ON queue BEGIN
    INSERT INTO queue_usage (recipient, count, bytes) VALUES (NEW.recipient, 1, length(NEW.body))
    ON CONFLICT (recipient) DO UPDATE SET count = count + 1, bytes = bytes + length(NEW.body);
END;
CREATE TRIGGER queue_usage_delete AFTER DELETE ON queue BEGIN
    UPDATE queue_usage SET count = count - 1, bytes = bytes - length(OLD.body)
    WHERE recipient = OLD.recipient;
END;
