-- Upstream mirroring: the last repomd.xml seen per repository and the sync history.

ALTER TABLE repos ADD COLUMN upstream_repomd_sha256 TEXT;

CREATE TABLE sync_runs (
    id                  INTEGER PRIMARY KEY,
    repo_id             INTEGER NOT NULL REFERENCES repos(id),
    started_at          INTEGER NOT NULL,
    finished_at         INTEGER,
    status              TEXT    NOT NULL,
    packages_added      INTEGER NOT NULL DEFAULT 0,
    packages_removed    INTEGER NOT NULL DEFAULT 0,
    packages_downloaded INTEGER NOT NULL DEFAULT 0,
    bytes_downloaded    INTEGER NOT NULL DEFAULT 0,
    error               TEXT
);
CREATE INDEX sync_runs_repo ON sync_runs(repo_id, started_at);
