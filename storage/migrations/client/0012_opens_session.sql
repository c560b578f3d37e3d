-- Version 12: opens_session marks an incoming message that was the first its sender sent
-- in its session (ratchet header N = 0 and PN = 0). When such a message is the lowest
-- number of its sender's counter that this installation has, the numbers below it were
-- sent in earlier sessions (to an earlier installation of this user) and are not
-- reported as missing (chat/PAYLOAD.md §3). Deleted messages keep the mark with their
-- place.
ALTER TABLE messages ADD COLUMN opens_session INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deleted_seqs ADD COLUMN opens_session INTEGER NOT NULL DEFAULT 0;
