DROP TRIGGER IF EXISTS memory_fts_update;
DROP TRIGGER IF EXISTS memory_fts_delete;
DROP TRIGGER IF EXISTS memory_fts_insert;
DROP TABLE IF EXISTS memory_fts;
DROP TABLE IF EXISTS memory_history;
ALTER TABLE memory DROP COLUMN run_id;
ALTER TABLE memory DROP COLUMN agent_id;
