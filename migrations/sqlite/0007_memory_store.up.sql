-- The memory store (issue 15): a memory may be narrowed to an agent or a run (as Mem0 does),
-- every change is kept in memory_history, and the text is indexed for keyword search (FTS5,
-- kept in step with the table by triggers).
ALTER TABLE memory ADD COLUMN agent_id text;
ALTER TABLE memory ADD COLUMN run_id text;

CREATE TABLE memory_history (
    id text NOT NULL PRIMARY KEY,
    memory_id text NOT NULL,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    event text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_memory text,
    new_memory text,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX memory_history_memory_idx ON memory_history (memory_id, created_at);

CREATE VIRTUAL TABLE memory_fts USING fts5 (content, content = 'memory', content_rowid = 'rowid');
INSERT INTO memory_fts (rowid, content) SELECT rowid, content FROM memory;
CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN
    INSERT INTO memory_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER memory_fts_update AFTER UPDATE OF content ON memory BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO memory_fts (rowid, content) VALUES (new.rowid, new.content);
END;
