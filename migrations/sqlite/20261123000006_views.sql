-- Views: ordered sets of repositories published as one repository.

CREATE TABLE views (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT    NOT NULL UNIQUE,
    created_at            INTEGER NOT NULL,
    latest_publication_id INTEGER REFERENCES publications(id)
);

-- The union of the members' current content, as last published.
CREATE TABLE view_latest_packages (
    view_id    INTEGER NOT NULL REFERENCES views(id),
    package_id INTEGER NOT NULL REFERENCES packages(id),
    location   TEXT    NOT NULL,
    PRIMARY KEY (view_id, location)
);
CREATE INDEX view_latest_packages_package ON view_latest_packages(package_id);

CREATE TABLE view_snapshots (
    id             INTEGER PRIMARY KEY,
    view_id        INTEGER NOT NULL REFERENCES views(id),
    name           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    publication_id INTEGER NOT NULL REFERENCES publications(id),
    package_count  INTEGER NOT NULL,
    UNIQUE (view_id, name)
);

CREATE TABLE view_snapshot_members (
    view_snapshot_id INTEGER NOT NULL REFERENCES view_snapshots(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    snapshot_id      INTEGER NOT NULL REFERENCES snapshots(id),
    PRIMARY KEY (view_snapshot_id, position)
);

CREATE TABLE view_snapshot_packages (
    view_snapshot_id INTEGER NOT NULL REFERENCES view_snapshots(id) ON DELETE CASCADE,
    package_id       INTEGER NOT NULL REFERENCES packages(id),
    location         TEXT    NOT NULL,
    PRIMARY KEY (view_snapshot_id, location)
);
CREATE INDEX view_snapshot_packages_package ON view_snapshot_packages(package_id);
