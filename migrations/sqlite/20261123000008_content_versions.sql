-- Content versions. Every change to a repository's current content (its packages or
-- its extra metadata) bumps repos.content_version; triggers do it, so no write path
-- can forget. latest_version is the content version latest_publication_id was
-- published from: when the two agree, latest's metadata describes the current content
-- and a snapshot freezes it without reading the content again.
-- views.latest_stamp records the member versions a view's latest was composed from
-- ("repo_id:version" in view order), with the same use.

ALTER TABLE repos ADD COLUMN content_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN latest_version INTEGER;
ALTER TABLE views ADD COLUMN latest_stamp TEXT;

CREATE TRIGGER repo_packages_version_insert AFTER INSERT ON repo_packages BEGIN
    UPDATE repos SET content_version = content_version + 1 WHERE id = NEW.repo_id;
END;
CREATE TRIGGER repo_packages_version_update AFTER UPDATE ON repo_packages BEGIN
    UPDATE repos SET content_version = content_version + 1 WHERE id IN (OLD.repo_id, NEW.repo_id);
END;
CREATE TRIGGER repo_packages_version_delete AFTER DELETE ON repo_packages BEGIN
    UPDATE repos SET content_version = content_version + 1 WHERE id = OLD.repo_id;
END;
CREATE TRIGGER repo_extras_version_insert AFTER INSERT ON repo_extras BEGIN
    UPDATE repos SET content_version = content_version + 1 WHERE id = NEW.repo_id;
END;
CREATE TRIGGER repo_extras_version_update AFTER UPDATE ON repo_extras BEGIN
    UPDATE repos SET content_version = content_version + 1 WHERE id IN (OLD.repo_id, NEW.repo_id);
END;
CREATE TRIGGER repo_extras_version_delete AFTER DELETE ON repo_extras BEGIN
    UPDATE repos SET content_version = content_version + 1 WHERE id = OLD.repo_id;
END;
