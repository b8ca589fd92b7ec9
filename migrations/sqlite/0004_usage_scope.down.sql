ALTER TABLE usage_record DROP COLUMN scope;
