-- Aliases of views, with the same grace-period history as repository aliases.

CREATE TABLE view_aliases (
    id               INTEGER PRIMARY KEY,
    view_id          INTEGER NOT NULL REFERENCES views(id),
    name             TEXT    NOT NULL,
    view_snapshot_id INTEGER NOT NULL REFERENCES view_snapshots(id),
    updated_at       INTEGER NOT NULL,
    UNIQUE (view_id, name)
);

CREATE TABLE view_alias_history (
    alias_id         INTEGER NOT NULL REFERENCES view_aliases(id) ON DELETE CASCADE,
    view_snapshot_id INTEGER NOT NULL REFERENCES view_snapshots(id),
    replaced_at      INTEGER NOT NULL
);
CREATE INDEX view_alias_history_alias ON view_alias_history(alias_id, replaced_at);
