-- Version 9 (issue 13 point 2: a session reset loses nothing). For an outgoing message:
-- the peer card it was encrypted for (a resend goes only to that identity key), the
-- relay's msg_id it was last accepted under (a retry request names it: chat/PAYLOAD.md
-- §4.3) and how many times it was sent again on request (bounded). A table of its own,
-- so the messages rows (and the plans of their hot queries) stay as they are.
CREATE TABLE sent_info (
    message_id   INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    to_card_id   TEXT NOT NULL DEFAULT '',
    relay_msg_id INTEGER NOT NULL DEFAULT 0,
    resends      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sent_info_by_relay_msg_id ON sent_info (relay_msg_id) WHERE relay_msg_id > 0;
