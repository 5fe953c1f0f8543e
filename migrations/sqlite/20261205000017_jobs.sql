-- Long operations started through the API (syncs, gc, verify): their state survives
-- the process. While one runs, its live counters are in the server's memory; the row
-- holds the last counters when it ends. A server that starts marks the rows still
-- queued or running as interrupted (whoever ran them is gone).

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,   -- 'sync', 'gc' or 'verify'
    target      TEXT    NOT NULL,   -- 'repo:NAME', or '' for the installation
    actor       TEXT    NOT NULL,   -- who started it, as the audit log names them
    params      TEXT    NOT NULL,   -- a JSON object
    state       TEXT    NOT NULL,   -- queued, running, succeeded, failed, cancelled, interrupted
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    done        INTEGER NOT NULL DEFAULT 0,   -- items done (files, blobs)
    total       INTEGER NOT NULL DEFAULT 0,   -- items in all (0: not known)
    bytes       INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    result      TEXT,               -- the operation's report (JSON) when it succeeded
    error       TEXT                -- why it failed, when it did
);
CREATE INDEX jobs_state ON jobs(state);
