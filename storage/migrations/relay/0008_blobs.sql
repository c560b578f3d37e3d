-- pfschat relay store, schema version 8: blobs (relay/PROTOCOL.md "Blobs"). The bytes
-- live in files beside the database (<db>.blobs/); these rows are their metadata.
-- committed: 0 while uploading (the file is <db>.blobs/partial/<id>), 1 once complete
-- (<db>.blobs/<id>). Times are Unix nanoseconds.
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
-- Which accounts declared a fetch complete (blob_done): a blob is deleted once as many
-- distinct accounts as its recipients did.
CREATE TABLE blob_fetches (
    blob_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (blob_id, name)
) WITHOUT ROWID;
