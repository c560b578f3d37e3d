-- Version 3: find an incoming message by the relay delivery it came in. When a
-- delivery comes back (committed, but the process stopped before it was acknowledged)
-- its delivery receipt is owed again: the stop may have come before that was committed.
CREATE INDEX messages_by_relay_id ON messages (relay_id) WHERE relay_id <> '';
