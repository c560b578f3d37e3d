-- Placeholder in branch a1 for the number reserved to another stream (CONTRACT4.md);
-- the lead drops this file when that stream's migration lands.
SELECT 1;
