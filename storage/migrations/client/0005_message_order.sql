-- Message order (payload version 2; reserved as client version 6 after store safety's 5:
-- renumber this file when both land). Every message has a place in its conversation,
-- ord, and an incoming one the sender's per-conversation sequence number, seq (0: none,
-- a version-1 payload or an undecryptable message). ord leaves gaps of 2^20 between
-- messages appended in arrival order, so a late message can be put between two others
-- (chat/PAYLOAD.md §3); existing messages keep their order. contacts.send_seq is the
-- last sequence number sent to the contact.
ALTER TABLE messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN ord INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET ord = id * 1048576;
CREATE INDEX messages_by_ord ON messages (contact, ord);
CREATE INDEX messages_by_seq ON messages (contact, seq) WHERE direction = 1 AND seq > 0;
ALTER TABLE contacts ADD COLUMN send_seq INTEGER NOT NULL DEFAULT 0;
