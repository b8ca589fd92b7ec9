DROP TABLE IF EXISTS limit_override;
DROP INDEX IF EXISTS usage_created_idx;
ALTER TABLE usage_record DROP COLUMN estimated;
ALTER TABLE usage_record DROP COLUMN audio_seconds;
ALTER TABLE usage_record DROP COLUMN outcome;
