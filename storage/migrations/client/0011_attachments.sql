-- Version 11: attachments (issue 15). One row per attachment, keyed by its message's
-- client id (outgoing: ours; incoming: "in:<sender>/<id>"). Everything about the file
-- (key, digest, blob id, capability, name, paths) is in meta_sealed, sealed under the
-- storage key like message bodies; state, progress and the failure reason are clear so
-- that pending uploads and downloads can be found without the key.
-- state: 1 uploading, 2 uploaded (committed on the relay, message not yet queued),
-- 3 sent (the message is in the outbox or beyond), 4 available (incoming, not fetched),
-- 5 downloading, 6 downloaded, 7 failed.
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
