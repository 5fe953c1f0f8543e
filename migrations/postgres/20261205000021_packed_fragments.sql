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
ALTER INDEX package_fragments_pkey RENAME TO package_fragments_text_pkey;

CREATE TABLE package_fragments (
    package_id      BIGINT NOT NULL PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,
    primary_href_at BIGINT NOT NULL,
    primary_len     BIGINT NOT NULL,
    filelists_len   BIGINT NOT NULL,
    other_len       BIGINT NOT NULL,
    packed          BYTEA  NOT NULL
);
-- Already compressed: TOAST would only try, and fail, to compress it again.
ALTER TABLE package_fragments ALTER COLUMN packed SET STORAGE EXTERNAL;
