ALTER TABLE message DROP COLUMN cost_usd;
ALTER TABLE message DROP COLUMN completion_tokens;
ALTER TABLE message DROP COLUMN prompt_tokens;
ALTER TABLE message DROP COLUMN status;
ALTER TABLE message DROP COLUMN seq;
DROP INDEX thread_user_live_idx;
ALTER TABLE thread DROP COLUMN summarized_through;
ALTER TABLE thread DROP COLUMN answering_until;
ALTER TABLE thread DROP COLUMN seq;
