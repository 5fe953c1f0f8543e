-- Upstream checksums that are not sha256 (sha1, sha512, ...) mapped to the sha256 the
-- pool stores, so a sync recognises packages it already holds.

CREATE TABLE upstream_checksums (
    algorithm TEXT NOT NULL,
    digest    TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    PRIMARY KEY (algorithm, digest)
);
