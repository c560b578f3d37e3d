-- Version 7 (U1, issue 13 points 10 and 11): what the user decides about a contact.
-- blocked: the user blocked the contact; nothing from them is stored or answered, and
--   the relay is told (block_synced is the state the relay last confirmed, so a block
--   made offline reaches the relay on the next connection).
-- nickname: a local display name ('' = none); never sent anywhere.
-- muted: no desktop notification for the contact's messages.
-- A contact that wrote first and was not accepted yet (consented = 0) is a message
-- request.
ALTER TABLE contacts ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1));
ALTER TABLE contacts ADD COLUMN block_synced INTEGER NOT NULL DEFAULT 0 CHECK (block_synced IN (0, 1));
ALTER TABLE contacts ADD COLUMN nickname TEXT NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1));

-- Messages deleted locally (/delete, /clear) leave their place in the sender's
-- sequence here, so the conversation does not report them as messages that never
-- arrived. Nothing of their content is kept.
CREATE TABLE deleted_seqs (
    id          INTEGER PRIMARY KEY, -- the deleted message's id
    contact     TEXT NOT NULL REFERENCES contacts (name) ON UPDATE CASCADE ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    sent_at     INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX deleted_seqs_by_contact ON deleted_seqs (contact);
