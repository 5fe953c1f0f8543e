-- Aliases (stable names like "prod") that point at one snapshot and switch atomically,
-- and what they pointed at before, kept servable for a grace period.

CREATE TABLE aliases (
    id          INTEGER PRIMARY KEY,
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    name        TEXT    NOT NULL,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
    updated_at  INTEGER NOT NULL,
    UNIQUE (repo_id, name)
);

CREATE TABLE alias_history (
    alias_id    INTEGER NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
    replaced_at INTEGER NOT NULL
);
CREATE INDEX alias_history_alias ON alias_history(alias_id, replaced_at);
