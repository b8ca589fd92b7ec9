-- What the chat endpoints keep on threads and messages.
-- seq: a small integer id of each thread and message, for seed 004 (its frontend parses ids as
-- integers). Set on insert as the next number (SQLite writes one statement at a time).
ALTER TABLE thread ADD COLUMN seq integer;
CREATE UNIQUE INDEX thread_seq_key ON thread (seq);
-- Until when an answer is being generated in this thread: a second send meanwhile gets 409.
ALTER TABLE thread ADD COLUMN answering_until text;
-- The running summary covers the messages up to this one (by seq).
ALTER TABLE thread ADD COLUMN summarized_through_seq integer;
-- Seed 002's sessions can be closed (listed only with active_only=false) and reopened.
ALTER TABLE thread ADD COLUMN is_active integer NOT NULL DEFAULT 1;
CREATE INDEX thread_user_live_idx ON thread (user_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;

ALTER TABLE message ADD COLUMN seq integer;
CREATE UNIQUE INDEX message_seq_key ON message (seq);
-- 'pending' while its answer is generated (never listed, removed if the model call fails),
-- 'complete' after.
ALTER TABLE message ADD COLUMN status text NOT NULL DEFAULT 'complete';
ALTER TABLE message ADD COLUMN prompt_tokens bigint;
ALTER TABLE message ADD COLUMN completion_tokens bigint;
ALTER TABLE message ADD COLUMN cost_usd real;
