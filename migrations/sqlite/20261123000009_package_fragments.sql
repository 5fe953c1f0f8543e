-- The rendered metadata fragments move out of the packages table into their own.
-- packages is read on every hot catalog path (content keys, snapshot copies and their
-- foreign-key checks, diffs, views); with kilobytes of XML in each row, 100,000
-- packages spread over hundreds of megabytes of pages. Narrow rows keep those paths
-- in cache; the fragments are read only when metadata is rendered.

CREATE TABLE package_fragments (
    package_id      INTEGER NOT NULL PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
    primary_xml     TEXT    NOT NULL,
    primary_href_at INTEGER NOT NULL,
    filelists_xml   TEXT    NOT NULL,
    other_xml       TEXT    NOT NULL
);

INSERT INTO package_fragments (package_id, primary_xml, primary_href_at, filelists_xml, other_xml)
    SELECT id, primary_xml, primary_href_at, filelists_xml, other_xml FROM packages;

ALTER TABLE packages DROP COLUMN primary_xml;
ALTER TABLE packages DROP COLUMN primary_href_at;
ALTER TABLE packages DROP COLUMN filelists_xml;
ALTER TABLE packages DROP COLUMN other_xml;
