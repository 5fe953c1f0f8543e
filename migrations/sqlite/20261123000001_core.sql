-- Core catalog: packages, repositories, their contents, snapshots and published metadata.

CREATE TABLE publications (
    id            INTEGER PRIMARY KEY,
    content_key   TEXT    NOT NULL UNIQUE,
    revision      INTEGER NOT NULL,
    package_count INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE publication_files (
    publication_id INTEGER NOT NULL REFERENCES publications(id) ON DELETE CASCADE,
    path           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    sha256         TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    PRIMARY KEY (publication_id, path)
);
CREATE INDEX publication_files_sha ON publication_files(sha256);

CREATE TABLE repos (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT    NOT NULL UNIQUE,
    created_at            INTEGER NOT NULL,
    latest_publication_id INTEGER REFERENCES publications(id)
);

CREATE TABLE packages (
    id              INTEGER PRIMARY KEY,
    sha256          TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    arch            TEXT    NOT NULL,
    epoch           TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    release         TEXT    NOT NULL,
    summary         TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    packager        TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    time_file       INTEGER NOT NULL,
    time_build      INTEGER NOT NULL,
    size_package    INTEGER NOT NULL,
    size_installed  INTEGER NOT NULL,
    size_archive    INTEGER NOT NULL,
    license         TEXT    NOT NULL,
    vendor          TEXT    NOT NULL,
    rpm_group       TEXT    NOT NULL,
    buildhost       TEXT    NOT NULL,
    sourcerpm       TEXT    NOT NULL,
    header_start    INTEGER NOT NULL,
    header_end      INTEGER NOT NULL,
    primary_xml     TEXT    NOT NULL,
    primary_href_at INTEGER NOT NULL,
    filelists_xml   TEXT    NOT NULL,
    other_xml       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX packages_name_arch ON packages(name, arch);

CREATE TABLE package_deps (
    package_id INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    flags      TEXT,
    epoch      TEXT,
    ver        TEXT,
    rel        TEXT,
    pre        INTEGER NOT NULL,
    PRIMARY KEY (package_id, seq)
);
CREATE INDEX package_deps_name ON package_deps(name, kind);

CREATE TABLE package_files (
    package_id INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    kind       INTEGER NOT NULL,
    PRIMARY KEY (package_id, seq)
);
CREATE INDEX package_files_path ON package_files(path);

CREATE TABLE package_changelogs (
    package_id INTEGER NOT NULL REFERENCES packages(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    author     TEXT    NOT NULL,
    date       INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    PRIMARY KEY (package_id, seq)
);

CREATE TABLE repo_packages (
    repo_id    INTEGER NOT NULL REFERENCES repos(id),
    package_id INTEGER NOT NULL REFERENCES packages(id),
    location   TEXT    NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (repo_id, location)
);
CREATE INDEX repo_packages_package ON repo_packages(package_id);

CREATE TABLE snapshots (
    id             INTEGER PRIMARY KEY,
    repo_id        INTEGER NOT NULL REFERENCES repos(id),
    name           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    publication_id INTEGER NOT NULL REFERENCES publications(id),
    package_count  INTEGER NOT NULL,
    total_size     INTEGER NOT NULL,
    UNIQUE (repo_id, name)
);

CREATE TABLE snapshot_packages (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    package_id  INTEGER NOT NULL REFERENCES packages(id),
    location    TEXT    NOT NULL,
    PRIMARY KEY (snapshot_id, location)
);
CREATE INDEX snapshot_packages_package ON snapshot_packages(package_id);
