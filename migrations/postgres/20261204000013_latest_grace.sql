-- The grace period of `latest`. When a repository's or a view's latest changes, what
-- it served before stays servable under `latest` for the alias grace time, as an
-- alias's previous snapshot does: a client that read the previous repomd.xml still
-- gets every file it names. latest_history keeps the publications latest served
-- (their metadata files), latest_displaced the packages that left or were replaced
-- at a location. Exactly one of repo_id and view_id is set. gc removes rows past the
-- grace time; until then they keep their publications and packages.

CREATE TABLE latest_history (
    repo_id        BIGINT REFERENCES repos(id),
    view_id        BIGINT REFERENCES views(id),
    publication_id BIGINT NOT NULL REFERENCES publications(id),
    replaced_at    BIGINT NOT NULL,
    CHECK ((repo_id IS NULL) <> (view_id IS NULL))
);
CREATE INDEX latest_history_repo ON latest_history(repo_id, replaced_at);
CREATE INDEX latest_history_view ON latest_history(view_id, replaced_at);
CREATE INDEX latest_history_publication ON latest_history(publication_id);

CREATE TABLE latest_displaced (
    repo_id      BIGINT REFERENCES repos(id),
    view_id      BIGINT REFERENCES views(id),
    location     TEXT NOT NULL,
    package_id   BIGINT NOT NULL REFERENCES packages(id),
    displaced_at BIGINT NOT NULL,
    CHECK ((repo_id IS NULL) <> (view_id IS NULL))
);
CREATE INDEX latest_displaced_repo ON latest_displaced(repo_id, displaced_at);
CREATE INDEX latest_displaced_view ON latest_displaced(view_id, displaced_at);
CREATE INDEX latest_displaced_package ON latest_displaced(package_id);
