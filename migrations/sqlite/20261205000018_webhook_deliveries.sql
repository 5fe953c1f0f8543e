-- Webhook deliveries: one row per event and webhook, written with the audit row of the
-- change that caused it (by whichever process made it) and delivered by the server
-- from here, with retries, so that a restart loses none.

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    url             TEXT    NOT NULL,
    event           TEXT    NOT NULL,   -- 'sync.finished', 'snapshot.created', ...
    body            TEXT    NOT NULL,   -- the JSON posted
    state           TEXT    NOT NULL,   -- 'pending', 'delivered' or 'failed' (gave up)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,            -- the receiver's last HTTP status
    last_error      TEXT,               -- why the last attempt failed
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
