-- What a model call was for: `api` for /v1 requests; in-process callers name their own (chat,
-- summary, memory_extraction, embedding, transcription).
ALTER TABLE usage_record ADD COLUMN scope text NOT NULL DEFAULT 'api';
