-- A package's metadata fragments are kept compressed: one zstd frame of the primary,
-- filelists and other elements back to back (see formats/repodata/packed.rs), with
-- the lengths that split it. They were most of the catalog's bytes (800 MB of XML at
-- 100,000 packages with long file lists and changelogs), and writing them was most
-- of a metadata-only sync's time.
--
-- SQL cannot compress, so the rows written before are moved by a one-time repair when
-- the catalog is opened ('packed-fragments', see store/catalog/mod.rs), which then
-- drops package_fragments_text.

ALTER TABLE package_fragments RENAME TO package_fragments_text;

CREATE TABLE package_fragments (
    package_id      INTEGER NOT NULL PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
    primary_href_at INTEGER NOT NULL,
    primary_len     INTEGER NOT NULL,
    filelists_len   INTEGER NOT NULL,
    other_len       INTEGER NOT NULL,
    packed          BLOB    NOT NULL
);
