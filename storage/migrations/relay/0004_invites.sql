-- pfschat relay store, schema version 4: invite codes for `--registration invite`.
-- Only a hash of each code is kept (SHA-256: the codes are 128-bit random, so a plain
-- hash is enough), so a copy of the database does not hand out registrations.
CREATE TABLE invites (
    hash       BLOB PRIMARY KEY,
    uses_left  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, -- Unix nanoseconds; 0 = never
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
