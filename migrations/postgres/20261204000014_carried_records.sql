-- Records of upstream's repomd.xml that regenerated metadata carries unchanged
-- (productid, custom types): the blob holds upstream's bytes as upstream compressed
-- them, and these columns hold what upstream's repomd.xml said of the record, so the
-- published repomd.xml lists it the same way. file_name is set exactly for these
-- rows; the opened documents (comps, updateinfo, modules) leave every column NULL.

ALTER TABLE repo_extras ADD COLUMN file_name          TEXT;
ALTER TABLE repo_extras ADD COLUMN checksum_type      TEXT;
ALTER TABLE repo_extras ADD COLUMN checksum           TEXT;
ALTER TABLE repo_extras ADD COLUMN open_checksum_type TEXT;
ALTER TABLE repo_extras ADD COLUMN open_checksum      TEXT;
ALTER TABLE repo_extras ADD COLUMN open_size          BIGINT;
ALTER TABLE repo_extras ADD COLUMN upstream_timestamp BIGINT;
