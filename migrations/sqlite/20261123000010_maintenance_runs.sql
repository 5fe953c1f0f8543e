-- Results of garbage collections and pool verifications, whichever process ran them,
-- so the server's metrics (and operators) can see them.

CREATE TABLE maintenance_runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,   -- 'gc' or 'verify'
    finished_at INTEGER NOT NULL,
    blobs       INTEGER NOT NULL,   -- gc: blobs removed; verify: blobs checked
    bytes       INTEGER NOT NULL,   -- gc: bytes freed; verify: 0
    problems    INTEGER NOT NULL    -- verify: missing + corrupt blobs; gc: 0
);
CREATE INDEX maintenance_runs_kind ON maintenance_runs(kind, finished_at);
