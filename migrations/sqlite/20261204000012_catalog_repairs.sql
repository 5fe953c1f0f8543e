-- One-time repairs of data an earlier release wrote, each recorded once done.
--
-- 'package-lists': a sync before this release wrote its packages' dependency, file and
-- changelog lists into their metadata fragments only, not into package_deps,
-- package_files and package_changelogs. The catalog reads them back from the fragments
-- when it is opened (see store/catalog/packages.rs) and records the repair here.

CREATE TABLE catalog_repairs (
    name    TEXT    NOT NULL PRIMARY KEY,
    done_at INTEGER NOT NULL
);
