DROP TABLE IF EXISTS limit_override;
DROP INDEX IF EXISTS usage_created_idx;
ALTER TABLE usage_record DROP COLUMN IF EXISTS estimated;
ALTER TABLE usage_record DROP COLUMN IF EXISTS audio_seconds;
ALTER TABLE usage_record DROP COLUMN IF EXISTS outcome;
