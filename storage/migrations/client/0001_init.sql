-- pfschat client store, schema version 1.
-- Times are INTEGER Unix nanoseconds (0 = unset). Columns named *_sealed hold
-- XChaCha20-Poly1305 ciphertexts under the storage key, bound to table, column and row.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- The storage key, wrapped by Argon2id(passphrase). mode 'none' = demo profile.
CREATE TABLE keyring (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    mode       TEXT NOT NULL CHECK (mode IN ('argon2id', 'none')),
    kdf_time   INTEGER NOT NULL DEFAULT 0,
    kdf_memory INTEGER NOT NULL DEFAULT 0, -- KiB
    kdf_threads INTEGER NOT NULL DEFAULT 0,
    salt       BLOB NOT NULL DEFAULT x'',
    wrapped    BLOB NOT NULL
);

CREATE TABLE identity (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    name               TEXT NOT NULL,
    card_id            TEXT NOT NULL,
    card               BLOB NOT NULL,
    private_key_sealed BLOB NOT NULL
);

CREATE TABLE cards (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    data       BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    verified   INTEGER NOT NULL DEFAULT 0,
    superseded INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX cards_by_name ON cards (name, first_seen);

CREATE TABLE contacts (
    name            TEXT PRIMARY KEY,
    card_id         TEXT NOT NULL REFERENCES cards (id),
    pending_card_id TEXT NOT NULL DEFAULT '',
    added_at        INTEGER NOT NULL,
    unread          INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE prekeys (
    kind           INTEGER NOT NULL,
    id             INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    private_sealed BLOB NOT NULL,
    handed_out_at  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;

-- Next prekey id per kind: monotonically increasing, never reused.
CREATE TABLE prekey_ids (
    kind INTEGER PRIMARY KEY,
    next INTEGER NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    peer_card_id TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 0,
    state_sealed BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX sessions_by_peer ON sessions (peer_card_id, active DESC, updated_at DESC);

-- AUTOINCREMENT: ids are never reused, and a body is sealed to its id.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    contact     TEXT NOT NULL REFERENCES contacts (name) ON UPDATE CASCADE ON DELETE CASCADE,
    direction   INTEGER NOT NULL CHECK (direction IN (1, 2)),
    body_sealed BLOB NOT NULL,
    sent_at     INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL DEFAULT 0,
    state       INTEGER NOT NULL DEFAULT 0,
    reason      TEXT NOT NULL DEFAULT '',
    client_id   TEXT NOT NULL DEFAULT '',
    relay_id    TEXT NOT NULL DEFAULT ''
);
-- Pages of one conversation, newest first: WHERE contact = ? AND id < ? ORDER BY id DESC.
CREATE INDEX messages_by_contact ON messages (contact, id);
-- Incoming messages not yet read, for MarkRead.
CREATE INDEX messages_unread ON messages (contact) WHERE direction = 1 AND state < 3;
CREATE INDEX messages_by_client_id ON messages (client_id) WHERE client_id <> '';

-- Relay message ids already committed, for duplicate detection on redelivery.
CREATE TABLE seen_relay_ids (
    relay_id TEXT PRIMARY KEY,
    seen_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id      TEXT NOT NULL UNIQUE,
    recipient      TEXT NOT NULL,
    payload_sealed BLOB NOT NULL,
    message_id     INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
