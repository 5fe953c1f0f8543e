-- The audit log: one row per change to the installation, whoever made it (the command
-- line, the scheduler, an API token), written when the operation ends. Nothing secret
-- is ever written here.

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,   -- unix time the operation started
    actor       TEXT    NOT NULL,   -- 'cli:<unix user>', 'scheduler' or 'token:<name>'
    operation   TEXT    NOT NULL,   -- 'sync', 'snapshot.create', 'alias.publish', ...
    target      TEXT    NOT NULL,   -- 'repo:NAME', 'view:NAME', 'token:NAME' or '' (all)
    params      TEXT    NOT NULL,   -- a JSON object
    outcome     TEXT    NOT NULL,   -- 'ok' or 'error'
    error       TEXT,               -- the error's text when outcome = 'error'
    duration_ms INTEGER NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);

-- API tokens. The secret is never stored: only its salted SHA-256. A token is
-- "cairn_<lookup>_<secret>": the lookup finds the row, the secret is checked against
-- the hash in constant time.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    lookup       TEXT    NOT NULL UNIQUE,
    salt         TEXT    NOT NULL,   -- hex
    hash         TEXT    NOT NULL,   -- hex sha256(salt || secret)
    scope        TEXT    NOT NULL,   -- 'read', 'write' or 'admin'
    repos        TEXT    NOT NULL,   -- JSON array of repository names; [] with views [] = all
    views        TEXT    NOT NULL,   -- JSON array of view names
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,            -- NULL: never
    revoked_at   INTEGER,
    last_used_at INTEGER
);
-- A name is taken while its token is not revoked; a revoked token's row stays (the
-- audit log names it) and its name can be given again.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens(name) WHERE revoked_at IS NULL;
