-- pfschat relay store, schema version 10: no queue_usage table. Each recipient's queued
-- count and bytes are kept in the relay's memory, counted from the queue when the store
-- opens (storage/relay_usage.go): upserting them cost a group commit two of its six
-- statements and a page written per recipient. The queue itself is the data; nothing
-- else is lost.
DROP TABLE queue_usage;
