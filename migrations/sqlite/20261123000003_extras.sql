-- Metadata carried through from upstream besides packages: comps (groups), updateinfo
-- (advisories) and modules, stored uncompressed in the pool.

CREATE TABLE repo_extras (
    repo_id INTEGER NOT NULL REFERENCES repos(id),
    kind    TEXT    NOT NULL,
    sha256  TEXT    NOT NULL,
    size    INTEGER NOT NULL,
    PRIMARY KEY (repo_id, kind)
);
