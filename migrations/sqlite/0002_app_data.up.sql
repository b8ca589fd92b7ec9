-- What the seed backends store besides identity. Every row belongs to a user and goes with them.
CREATE TABLE prompt (
    id text NOT NULL PRIMARY KEY,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    name text NOT NULL,
    category text,
    text text NOT NULL,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX prompt_user_idx ON prompt (user_id, created_at);

CREATE TABLE prompt_favorite (
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    prompt_id text NOT NULL REFERENCES prompt (id) ON DELETE CASCADE,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (user_id, prompt_id)
);

-- Threads are seed 003's threads, seed 004's conversations and seed 002's chat sessions.
CREATE TABLE thread (
    id text NOT NULL PRIMARY KEY,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    title text,
    model text,
    summary text,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    deleted_at text
);
CREATE INDEX thread_user_idx ON thread (user_id, updated_at);

CREATE TABLE message (
    id text NOT NULL PRIMARY KEY,
    thread_id text NOT NULL REFERENCES thread (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    role text NOT NULL,
    content text NOT NULL,
    model text,
    metadata text,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX message_thread_idx ON message (thread_id, created_at);

CREATE TABLE attachment (
    id text NOT NULL PRIMARY KEY,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    message_id text REFERENCES message (id) ON DELETE CASCADE,
    filename text NOT NULL,
    content_type text NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 text NOT NULL,
    -- Where the bytes live: inline in `data`, or a key in the configured file store.
    storage_key text,
    data blob,
    thumbnail blob,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX attachment_message_idx ON attachment (message_id);
CREATE INDEX attachment_user_idx ON attachment (user_id, created_at);

-- One row per /v1 request (and per chat message sent through the app endpoints).
CREATE TABLE usage_record (
    id integer PRIMARY KEY AUTOINCREMENT,
    request_id text NOT NULL,
    user_id text REFERENCES "user" ("id") ON DELETE CASCADE,
    api_key_id text REFERENCES api_key (id) ON DELETE SET NULL,
    thread_id text REFERENCES thread (id) ON DELETE SET NULL,
    message_id text REFERENCES message (id) ON DELETE SET NULL,
    route text NOT NULL,
    model text,
    provider text,
    upstream_model text,
    status integer NOT NULL,
    stream integer NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens bigint NOT NULL DEFAULT 0,
    audio_tokens bigint NOT NULL DEFAULT 0,
    cost_usd real NOT NULL DEFAULT 0,
    latency_ms bigint NOT NULL DEFAULT 0,
    ttfb_ms bigint,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX usage_user_idx ON usage_record (user_id, created_at);
CREATE INDEX usage_key_idx ON usage_record (api_key_id, created_at);
CREATE INDEX usage_message_idx ON usage_record (message_id);
CREATE INDEX usage_thread_idx ON usage_record (thread_id);

CREATE TABLE memory (
    id text NOT NULL PRIMARY KEY,
    user_id text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    content text NOT NULL,
    content_hash text NOT NULL,
    metadata text,
    embedding blob,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX memory_user_idx ON memory (user_id, updated_at);
CREATE UNIQUE INDEX memory_user_hash_key ON memory (user_id, content_hash);
