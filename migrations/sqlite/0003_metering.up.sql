-- Usage metering: how each request ended, audio seconds (priced per minute), whether the tokens
-- are the gateway's estimate; limit overrides per user and per API key.
ALTER TABLE usage_record ADD COLUMN outcome text NOT NULL DEFAULT 'complete';
ALTER TABLE usage_record ADD COLUMN audio_seconds real NOT NULL DEFAULT 0;
ALTER TABLE usage_record ADD COLUMN estimated integer NOT NULL DEFAULT 0;
CREATE INDEX usage_created_idx ON usage_record (created_at);

CREATE TABLE limit_override (
    id text PRIMARY KEY,
    user_id text UNIQUE REFERENCES "user" ("id") ON DELETE CASCADE,
    api_key_id text UNIQUE REFERENCES api_key (id) ON DELETE CASCADE,
    tier text,
    requests_per_minute bigint,
    tokens_per_minute bigint,
    max_concurrent bigint,
    daily_budget_usd real,
    monthly_budget_usd real,
    updated_at text NOT NULL,
    CHECK ((user_id IS NULL) <> (api_key_id IS NULL))
);
