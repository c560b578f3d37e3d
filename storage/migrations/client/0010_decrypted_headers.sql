-- Version 10: which ratchet messages were decrypted (issue 12).
-- The ratchet answers "already decrypted, or its key is gone" for both a replay and a
-- late message whose skipped key expired or was evicted. A replay is dropped silently;
-- a late message is shown as a placeholder. What tells them apart: the (chain, number)
-- of every message this profile decrypted (or showed as late), its ratchet public key
-- and message number from the header (public). Bounded: the newest rows are kept.
CREATE TABLE decrypted_headers (
    dh BLOB NOT NULL,     -- the chain's ratchet public key (from the message header)
    n  INTEGER NOT NULL,  -- the message number in that chain
    UNIQUE (dh, n)
);
