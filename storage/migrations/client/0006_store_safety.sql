-- Version 5: store safety (issue 12).
-- A session row's generation counts its commits: a write names the generation it read
-- and is refused when the row has moved on (compare-and-swap), and the sealed state is
-- bound to its generation, so a stale writer can never put back an older ratchet state.
-- Generation 0 is a row written before this version (sealed without a generation).
ALTER TABLE sessions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

-- Every accepted first message (initial message that created a session): a copy of it
-- is a replay and is refused, even when the session it made is gone and it used no
-- one-time prekey. Kept while the signed prekey it names is held.
CREATE TABLE first_messages (
    spk_id    INTEGER NOT NULL,
    kem_kind  INTEGER NOT NULL,
    kem_id    INTEGER NOT NULL,
    ephemeral BLOB NOT NULL,  -- the initiator's ephemeral public key (public)
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (spk_id, kem_kind, kem_id, ephemeral)
) WITHOUT ROWID;

-- The card an incoming message was signed by, and whether that card was a key change
-- not yet accepted (the message is shown only behind the key-change warning).
ALTER TABLE messages ADD COLUMN sender_card_id TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN key_pending INTEGER NOT NULL DEFAULT 0 CHECK (key_pending IN (0, 1));

-- Whether the user has written to or accepted this contact: only then do delivery and
-- read receipts go to them. Contacts from before this version keep getting them.
ALTER TABLE contacts ADD COLUMN consented INTEGER NOT NULL DEFAULT 1 CHECK (consented IN (0, 1));

-- When each chain of skipped message keys (by its ratchet public key) was first stored
-- in a session, so skipped keys can expire by time: the ratchet state holds no times.
CREATE TABLE skipped_chains (
    session_id TEXT NOT NULL,
    dh         BLOB NOT NULL, -- the chain's ratchet public key (public)
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (session_id, dh)
) WITHOUT ROWID;
