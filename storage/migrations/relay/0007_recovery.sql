-- pfschat relay store, schema version 7: an account's recovery verifier (NULL: no
-- recovery code set), a keyed hash of the proof of the recovery code its owner was
-- shown (relay/PROTOCOL.md "Identity replacement and recovery"). The HMAC key is in
-- meta ("recovery_hmac_key").
ALTER TABLE accounts ADD COLUMN recovery BLOB;

-- Cards replaced by replace_card or recover, kept so that a device still holding one
-- is told its card was replaced (card_replaced) instead of a bare login_failed. Rows
-- go with their name's account.
CREATE TABLE replaced_cards (
    card_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    card        BLOB NOT NULL,
    replaced_at INTEGER NOT NULL
);
CREATE INDEX replaced_cards_name ON replaced_cards (name);
