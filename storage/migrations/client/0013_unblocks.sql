-- Version 13: every unblock of a contact, where version 12 kept only the last
-- (contacts.unblocked_after). after_id is the highest message id there was when the
-- user unblocked the contact: the contact's messages with a higher id arrived after
-- that unblock. What the contact sent while blocked never reached this profile
-- (dropped unread, or refused by the relay) although it spent numbers of their
-- sequence; each unblock excuses the hole its block made (chat/PAYLOAD.md §3), and with
-- only the last one kept, the hole of an earlier block was reported again after a
-- later unblock. Message ids only grow (AUTOINCREMENT), so a point stays true when
-- messages are deleted (deleted_seqs keeps their ids). Two unblocks with no message in
-- between are one point.
CREATE TABLE unblocks (
    contact  TEXT NOT NULL REFERENCES contacts (name) ON UPDATE CASCADE ON DELETE CASCADE,
    after_id INTEGER NOT NULL,
    PRIMARY KEY (contact, after_id)
) WITHOUT ROWID;
-- The last unblock is all a store of version 12 knows; earlier ones are lost.
INSERT INTO unblocks (contact, after_id) SELECT name, unblocked_after FROM contacts WHERE unblocked_after > 0;
-- unblocks is the only record of the unblocks from now on: the column goes, so nothing
-- can read the last unblock alone again.
ALTER TABLE contacts DROP COLUMN unblocked_after;
