-- Packages of repositories with policy = "on_demand" or "streamed" that the sync did not
-- download: where upstream has each (the repository and its location there) and what
-- it must be (upstream's checksum, the size). The server fetches one on the first
-- request for it. fetched_at: when it reached the pool (never, for "streamed").

CREATE TABLE remote_packages (
    sha256     TEXT    NOT NULL PRIMARY KEY,
    repo_id    BIGINT  NOT NULL REFERENCES repos(id),
    href       TEXT    NOT NULL,
    algorithm  TEXT    NOT NULL,
    checksum   TEXT    NOT NULL,
    size       BIGINT  NOT NULL,
    fetched_at BIGINT
);
CREATE INDEX remote_packages_repo ON remote_packages(repo_id);
