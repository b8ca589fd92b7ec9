-- Usage metering: how each request ended, audio seconds (priced per minute), whether the tokens
-- are the gateway's estimate; limit overrides per user and per API key.
ALTER TABLE usage_record ADD COLUMN IF NOT EXISTS outcome text NOT NULL DEFAULT 'complete';
ALTER TABLE usage_record ADD COLUMN IF NOT EXISTS audio_seconds double precision NOT NULL DEFAULT 0;
ALTER TABLE usage_record ADD COLUMN IF NOT EXISTS estimated boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS usage_created_idx ON usage_record (created_at);

CREATE TABLE IF NOT EXISTS limit_override (
    id text PRIMARY KEY,
    user_id text UNIQUE REFERENCES "user" ("id") ON DELETE CASCADE,
    api_key_id text UNIQUE REFERENCES api_key (id) ON DELETE CASCADE,
    tier text,
    requests_per_minute bigint,
    tokens_per_minute bigint,
    max_concurrent bigint,
    daily_budget_usd double precision,
    monthly_budget_usd double precision,
    updated_at timestamptz NOT NULL,
    CHECK ((user_id IS NULL) <> (api_key_id IS NULL))
);
