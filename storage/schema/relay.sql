-- pfschat relay store, schema version 10: made from migrations/relay by TestSchemaSnapshot
-- (go test ./storage -run TestSchemaSnapshot -update); do not edit.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE accounts (
    name       TEXT PRIMARY KEY,
    card_id    TEXT NOT NULL UNIQUE,
    card       BLOB NOT NULL,
    created_at INTEGER NOT NULL
, last_login INTEGER NOT NULL DEFAULT 0, recovery BLOB) WITHOUT ROWID;
CREATE TABLE prekeys (
    card_id TEXT NOT NULL,
    kind    INTEGER NOT NULL,
    id      INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (card_id, kind, id)
) WITHOUT ROWID;
CREATE TABLE dedup (
    sender     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (sender, client_id)
) WITHOUT ROWID;
CREATE INDEX dedup_by_expiry ON dedup (expires_at);
CREATE TABLE invites (
    hash       BLOB PRIMARY KEY,
    uses_left  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, -- Unix nanoseconds; 0 = never
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE blocks (
    blocker    TEXT NOT NULL,
    blocked    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
CREATE TABLE replaced_cards (
    card_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    card        BLOB NOT NULL,
    replaced_at INTEGER NOT NULL
);
CREATE INDEX replaced_cards_name ON replaced_cards (name);
CREATE TABLE blobs (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    size        INTEGER NOT NULL,
    recipients  INTEGER NOT NULL,
    committed   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blobs_owner ON blobs (owner);
CREATE INDEX blobs_expiry ON blobs (expires_at);
CREATE TABLE blob_fetches (
    blob_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (blob_id, name)
) WITHOUT ROWID;
CREATE INDEX prekeys_ids ON prekeys (card_id, kind);
CREATE TABLE "queue" (
    id             INTEGER PRIMARY KEY,
    recipient      TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_card_id TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    body           BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX queue_by_recipient ON queue (recipient, id);
-- sqlite_sequence, left behind by an AUTOINCREMENT table the migrations dropped:
CREATE TABLE pfschat_sequence_maker (id INTEGER PRIMARY KEY AUTOINCREMENT);
DROP TABLE pfschat_sequence_maker;
INSERT INTO meta VALUES ('queue_id_ceiling',0);
