-- Drops the better-auth tables too: on a database shared with a better-auth app this removes
-- its users and sessions.
DROP TABLE IF EXISTS api_key;
DROP TABLE IF EXISTS refresh_token;
DROP TABLE IF EXISTS "verification";
DROP TABLE IF EXISTS "account";
DROP TABLE IF EXISTS "session";
DROP TABLE IF EXISTS "user";
