-- Placeholder for relay schema version 4 (reserved for the abuse-limits work of issue
-- 11); it changes nothing. Whoever merges that branch's 0004 deletes this file.
SELECT 1;
