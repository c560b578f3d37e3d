-- Reserved: relay schema version 6 is U1's migration (blocking); this placeholder only
-- keeps the numbers contiguous on branch u2 and is replaced by U1's file at merge.
SELECT 1;
