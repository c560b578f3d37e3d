-- pfschat relay store, schema version 7: an account's recovery verifier (NULL: no
-- recovery code set), a keyed hash of the proof of the recovery code its owner was
-- shown (relay/PROTOCOL.md "Identity replacement and recovery"). The HMAC key is in
-- meta ("recovery_hmac_key").
ALTER TABLE accounts ADD COLUMN recovery BLOB;
