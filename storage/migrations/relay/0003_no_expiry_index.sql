-- pfschat relay store, schema version 3: no index on queue.expires_at. Every queued
-- and every acknowledged message paid a b-tree update for it (about 7% of the relay's
-- durable throughput); Expire, which runs hourly, now finds expired messages with a
-- scan on a reader connection and deletes them in short transactions.
DROP INDEX queue_by_expiry;
