-- pfschat relay store, schema version 6 (U1, issue 13 point 11): blocks. blocker has
-- asked the relay to refuse blocked's messages to it and blocked's bundle fetches of it
-- (PROTOCOL.md "Blocking"). Both are names; a blocker's rows go with its account.
CREATE TABLE blocks (
    blocker    TEXT NOT NULL,
    blocked    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
