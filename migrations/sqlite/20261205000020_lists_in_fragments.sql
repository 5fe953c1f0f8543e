-- A package's file list and changelog are kept once: in its metadata fragments
-- (package_fragments.filelists_xml and other_xml), which every publication renders
-- from. The catalog reads them from there when a package is shown (its page, the API).
-- The rows they also had here were the largest part of a sync's writes (at 100,000
-- packages, 4 million file rows with their path index and 2 million changelog rows,
-- more than the fragments themselves), and nothing queried them.

DROP TABLE package_files;
DROP TABLE package_changelogs;
