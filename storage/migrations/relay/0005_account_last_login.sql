-- pfschat relay store, schema version 5: when each account last logged in (Unix
-- nanoseconds; 0 = not since this version, then created_at counts), so an operator can
-- free names not used for a long time (pfschat relay --account-expiry DAYS).
ALTER TABLE accounts ADD COLUMN last_login INTEGER NOT NULL DEFAULT 0;
