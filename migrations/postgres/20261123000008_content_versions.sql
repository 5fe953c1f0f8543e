-- Content versions. Every change to a repository's current content (its packages or
-- its extra metadata) bumps repos.content_version; triggers do it, so no write path
-- can forget. latest_version is the content version latest_publication_id was
-- published from: when the two agree, latest's metadata describes the current content
-- and a snapshot freezes it without reading the content again.
-- views.latest_stamp records the member versions a view's latest was composed from
-- ("repo_id:version" in view order), with the same use.
-- Statement-level triggers with transition tables: one UPDATE per statement and
-- repository, not one per row (a per-row UPDATE of the same repos row would leave a
-- dead tuple per package).

ALTER TABLE repos ADD COLUMN content_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN latest_version BIGINT;
ALTER TABLE views ADD COLUMN latest_stamp TEXT;

CREATE FUNCTION cairn_bump_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repos SET content_version = content_version + 1
     WHERE id IN (SELECT DISTINCT repo_id FROM new_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION cairn_bump_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repos SET content_version = content_version + 1
     WHERE id IN (SELECT DISTINCT repo_id FROM old_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION cairn_bump_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repos SET content_version = content_version + 1
     WHERE id IN (SELECT repo_id FROM old_rows UNION SELECT repo_id FROM new_rows);
    RETURN NULL;
END $$;

CREATE TRIGGER repo_packages_version_insert AFTER INSERT ON repo_packages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_bump_inserted();
CREATE TRIGGER repo_packages_version_update AFTER UPDATE ON repo_packages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cairn_bump_updated();
CREATE TRIGGER repo_packages_version_delete AFTER DELETE ON repo_packages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_bump_deleted();
CREATE TRIGGER repo_extras_version_insert AFTER INSERT ON repo_extras
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_bump_inserted();
CREATE TRIGGER repo_extras_version_update AFTER UPDATE ON repo_extras
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cairn_bump_updated();
CREATE TRIGGER repo_extras_version_delete AFTER DELETE ON repo_extras
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cairn_bump_deleted();
