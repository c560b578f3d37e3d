-- Version 12: unblocked_after is the highest message id there was when the user last
-- unblocked the contact (0: never). What the contact sent while blocked never reached
-- this profile (dropped unread, or refused by the relay) although it spent numbers of
-- their sequence; the messages with a higher id arrived after the unblock, and the
-- numbers below the first of them are not reported as missing (chat/PAYLOAD.md §3).
-- Message ids only grow (AUTOINCREMENT), so the mark stays true when messages are
-- deleted (deleted_seqs keeps their ids).
ALTER TABLE contacts ADD COLUMN unblocked_after INTEGER NOT NULL DEFAULT 0;
