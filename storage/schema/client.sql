-- pfschat client store, schema version 15: made from migrations/client by TestSchemaSnapshot
-- (go test ./storage -run TestSchemaSnapshot -update); do not edit.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
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
, send_seq INTEGER NOT NULL DEFAULT 0, consented INTEGER NOT NULL DEFAULT 1 CHECK (consented IN (0, 1)), blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)), block_synced INTEGER NOT NULL DEFAULT 0 CHECK (block_synced IN (0, 1)), nickname TEXT NOT NULL DEFAULT '', muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)), rejected_card_id TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE prekeys (
    kind           INTEGER NOT NULL,
    id             INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    private_sealed BLOB NOT NULL,
    handed_out_at  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
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
, generation INTEGER NOT NULL DEFAULT 0);
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
, seq INTEGER NOT NULL DEFAULT 0, ord INTEGER NOT NULL DEFAULT 0, sender_card_id TEXT NOT NULL DEFAULT '', key_pending INTEGER NOT NULL DEFAULT 0 CHECK (key_pending IN (0, 1)));
CREATE INDEX messages_by_contact ON messages (contact, id);
CREATE INDEX messages_unread ON messages (contact) WHERE direction = 1 AND state < 3;
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
, awaiting_session INTEGER NOT NULL DEFAULT 0 CHECK (awaiting_session IN (0, 1)));
CREATE INDEX messages_by_client_id ON messages (client_id, direction DESC, id) WHERE client_id <> '';
CREATE INDEX sessions_by_peer ON sessions (peer_card_id, active DESC, updated_at DESC, id);
CREATE INDEX messages_by_relay_id ON messages (relay_id) WHERE relay_id <> '';
CREATE INDEX messages_by_ord ON messages (contact, ord);
CREATE INDEX messages_by_seq ON messages (contact, seq) WHERE direction = 1 AND seq > 0;
CREATE TABLE first_messages (
    spk_id    INTEGER NOT NULL,
    kem_kind  INTEGER NOT NULL,
    kem_id    INTEGER NOT NULL,
    ephemeral BLOB NOT NULL,  -- the initiator's ephemeral public key (public)
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (spk_id, kem_kind, kem_id, ephemeral)
) WITHOUT ROWID;
CREATE TABLE skipped_chains (
    session_id TEXT NOT NULL,
    dh         BLOB NOT NULL, -- the chain's ratchet public key (public)
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (session_id, dh)
) WITHOUT ROWID;
CREATE TABLE deleted_seqs (
    id          INTEGER PRIMARY KEY, -- the deleted message's id
    contact     TEXT NOT NULL REFERENCES contacts (name) ON UPDATE CASCADE ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    sent_at     INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX deleted_seqs_by_contact ON deleted_seqs (contact);
CREATE TABLE sent_info (
    message_id   INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    to_card_id   TEXT NOT NULL DEFAULT '',
    relay_msg_id INTEGER NOT NULL DEFAULT 0,
    resends      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sent_info_by_relay_msg_id ON sent_info (relay_msg_id) WHERE relay_msg_id > 0;
CREATE TABLE decrypted_headers (
    dh BLOB NOT NULL,     -- the chain's ratchet public key (from the message header)
    n  INTEGER NOT NULL,  -- the message number in that chain
    UNIQUE (dh, n)
);
CREATE TABLE attachments (
    client_id   TEXT PRIMARY KEY,
    contact     TEXT NOT NULL,
    direction   INTEGER NOT NULL CHECK (direction IN (1, 2)),
    state       INTEGER NOT NULL,
    done_bytes  INTEGER NOT NULL DEFAULT 0,
    meta_sealed BLOB NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX attachments_state ON attachments (state);
CREATE TABLE unblocks (
    contact  TEXT NOT NULL REFERENCES contacts (name) ON UPDATE CASCADE ON DELETE CASCADE,
    after_id INTEGER NOT NULL,
    PRIMARY KEY (contact, after_id)
) WITHOUT ROWID;
CREATE INDEX messages_unread_filled ON messages (contact) WHERE direction = 1 AND state < 3 AND reason <> '';
