-- An API key is an admin credential only when made with the admin scope (and its owner is an
-- admin); every key made before this is not.
ALTER TABLE api_key ADD COLUMN admin integer NOT NULL DEFAULT 0;
