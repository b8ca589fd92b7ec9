DROP TABLE IF EXISTS memory_history;
DROP INDEX IF EXISTS memory_search_idx;
ALTER TABLE memory DROP COLUMN search;
ALTER TABLE memory DROP COLUMN run_id;
ALTER TABLE memory DROP COLUMN agent_id;
