-- pfschat relay store, schema version 2: queue_usage is kept by the store's code, one
-- statement per recipient per transaction, instead of by row triggers (a trigger per
-- queued and per deleted message cost about a fifth of a group commit). Every write to
-- queue goes through Enqueue, Ack/AckBatch or Expire, which update queue_usage in the
-- same transaction.
DROP TRIGGER queue_usage_insert;
DROP TRIGGER queue_usage_delete;
