-- The memory store (issue 15): a memory may be narrowed to an agent or a run (as Mem0 does),
-- every change is kept in memory_history, and the text is indexed for keyword search (a
-- generated tsvector with a GIN index; the 'simple' configuration: memories are in any language).
ALTER TABLE memory ADD COLUMN agent_id text;
ALTER TABLE memory ADD COLUMN run_id text;
ALTER TABLE memory ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX memory_search_idx ON memory USING gin (search);

CREATE TABLE memory_history (
    id text NOT NULL PRIMARY KEY,
    memory_id text NOT NULL,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    event text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_memory text,
    new_memory text,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX memory_history_memory_idx ON memory_history (memory_id, created_at);
